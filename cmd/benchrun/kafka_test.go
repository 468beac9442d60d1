package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestKeysScriptCyclesTheUserID(t *testing.T) {
	c := contender{Group: "kafka", Name: nameManyKeys, Method: "POST", Body: benchEvent(time.Now()), Keys: manyKeys,
		Headers: map[string]string{"Host": goHost}}
	s, err := keysScript(c)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`local pre, post = ("(?:[^"\\]|\\.)*"), ("(?:[^"\\]|\\.)*")`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no pre/post in the script:\n%s", s)
	}
	pre, err1 := strconv.Unquote(m[1])
	post, err2 := strconv.Unquote(m[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("unquote: %v %v", err1, err2)
	}
	body := pre + "0042" + post // what string.format("%04d", 42) makes of it
	var ev map[string]any
	if err := json.Unmarshal([]byte(body), &ev); err != nil || ev["user_id"] != "u_bench0042" {
		t.Errorf("body %s: user_id %v, err %v", body, ev["user_id"], err)
	}
	for _, want := range []string{`i = (i + 1) % 10000`, `"%04d"`, `wrk.format("POST"`, `["Host"] = "go.bench"`} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %s:\n%s", want, s)
		}
	}
	c.Body = `{"type":"purchase"}`
	if _, err := keysScript(c); err == nil {
		t.Error("a body without the bench user_id gave a script")
	}
}
