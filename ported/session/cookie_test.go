package session

import (
	"bufio"
	"strings"
	"testing"
)

func bufioReader(s string) *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(s), 64<<10) }

// TestCookieValue follows what PHP-FPM behind the sample's Nginx put in
// $_COOKIE for the same headers (observed through the monolith's /headers:
// see legacy_headers in examples/monolith/src/legacy.php).
func TestCookieValue(t *testing.T) {
	tests := []struct {
		name    string
		cookies []string
		want    string
		wantOK  bool
	}{
		{"plain", []string{"PHPSESSID=abc"}, "abc", true},
		{"among others", []string{"a=1; PHPSESSID=abc; b=2"}, "abc", true},
		{"first wins", []string{"PHPSESSID=one; PHPSESSID=two"}, "one", true},
		{"last line only", []string{"PHPSESSID=one", "x=1"}, "", false},
		{"last line wins", []string{"PHPSESSID=one", "PHPSESSID=two"}, "two", true},
		{"raw url decoding", []string{"PHPSESSID=a%41+b"}, "aA+b", true},
		{"bad percent stays", []string{"PHPSESSID=a%4"}, "a%4", true},
		{"no value", []string{"PHPSESSID"}, "", true},
		{"leading white space", []string{"x=1;\t  PHPSESSID=abc"}, "abc", true},
		{"dot becomes underscore", []string{"PHP.SESSID=abc"}, "", false},
		{"array syntax shadows the name", []string{"PHPSESSID[x]=1; PHPSESSID=abc"}, "", false},
		{"other array first is fine", []string{"other[x]=1; PHPSESSID=abc"}, "abc", true},
		{"no cookie", nil, "", false},
		{"empty name skipped", []string{"=x; PHPSESSID=abc"}, "abc", true},
		{"case matters", []string{"phpsessid=abc"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := requestWithCookie(t, tt.cookies...)
			got, ok := cookieValue(&ctx.Request.Header, "PHPSESSID")
			if ok != tt.wantOK || string(got) != tt.want {
				t.Errorf("cookieValue = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	// Past max_input_vars PHP stops reading cookies.
	many := strings.Repeat("c=1; ", maxInputVars) + "PHPSESSID=abc"
	if _, ok := cookieValue(&requestWithCookie(t, many).Request.Header, "PHPSESSID"); ok {
		t.Error("cookie number 1001 was read; PHP stops at max_input_vars")
	}
	if name, arr := phpVarName([]byte("PHP[SESS ID")); name != "PHP_SESS_ID" || arr {
		t.Errorf("phpVarName(PHP[SESS ID) = %q, %v", name, arr)
	}
}

func TestSIDPolicy(t *testing.T) {
	tests := []struct {
		pol  SIDPolicy
		id   string
		want bool
	}{
		{SIDPolicy{}, "0123456789abcdefghijklmnop", true},
		{SIDPolicy{}, "0123456789abcdefghijklmnov", true},
		{SIDPolicy{}, "0123456789abcdefghijklmnow", false}, // w is past 5 bits
		{SIDPolicy{}, "0123456789abcdefghijklmno", false},  // 25 characters
		{SIDPolicy{}, "0123456789abcdefghijklmnopq", false},
		{SIDPolicy{}, "0123456789abcdefghijklmno/", false},
		{SIDPolicy{}, "../../../../etc/passwd0000", false},
		{SIDPolicy{Length: 32, BitsPerCharacter: 4}, "0123456789abcdef0123456789abcdef", true},
		{SIDPolicy{Length: 32, BitsPerCharacter: 4}, "0123456789abcdeg0123456789abcdef", false},
		{SIDPolicy{Length: 22, BitsPerCharacter: 6}, "azAZ09,-azAZ09,-azAZ09", true},
		{SIDPolicy{Length: 22, BitsPerCharacter: 6}, "azAZ09,-azAZ09,-azAZ0.", false},
	}
	for _, tt := range tests {
		if got := tt.pol.WithDefaults().Valid([]byte(tt.id)); got != tt.want {
			t.Errorf("%+v.Valid(%q) = %v, want %v", tt.pol, tt.id, got, tt.want)
		}
	}
	for _, bad := range []SIDPolicy{{Length: 21, BitsPerCharacter: 5}, {Length: 257, BitsPerCharacter: 5}, {Length: 26, BitsPerCharacter: 7}, {Length: 26, BitsPerCharacter: 3}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

// TestSIDPolicyMatchesPHP: ids PHP generates under each setting pass.
func TestSIDPolicyMatchesPHP(t *testing.T) {
	for _, pol := range []SIDPolicy{{Length: 26, BitsPerCharacter: 5}, {Length: 32, BitsPerCharacter: 4}, {Length: 48, BitsPerCharacter: 6}} {
		out := runPHP(t, `for ($i = 0; $i < 200; $i++) echo session_create_id(), "\n";`,
			"session.sid_length="+itoa(pol.Length), "session.sid_bits_per_character="+itoa(pol.BitsPerCharacter))
		for _, id := range strings.Fields(string(out)) {
			if !pol.Valid([]byte(id)) {
				t.Errorf("%+v refuses PHP's id %q", pol, id)
			}
		}
	}
}
