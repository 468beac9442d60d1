package events

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPHPTwinConstants keeps the lists, messages and limits that the PHP
// twin repeats in step with this package. The parity test would catch most
// drift too, but only for the values its corpus happens to use.
func TestPHPTwinConstants(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "monolith", "src", "events.php"))
	if err != nil {
		t.Fatal(err)
	}
	block := func(name string) string {
		re := regexp.MustCompile(`(?s)const ` + name + ` = \[(.*?)\n\];`)
		m := re.FindSubmatch(src)
		if m == nil {
			t.Fatalf("events.php: no const %s = [...]", name)
		}
		return string(m[1])
	}

	var phpCountries []string
	for _, m := range regexp.MustCompile(`'([A-Z]{2})'`).FindAllStringSubmatch(block("EVENTS_COUNTRIES"), -1) {
		phpCountries = append(phpCountries, m[1])
	}
	if goCountries := strings.Fields(countryList); !slices.Equal(phpCountries, goCountries) {
		t.Errorf("countries differ:\nphp %v\ngo  %v", phpCountries, goCountries)
	}

	var phpCurrencies []string
	for _, m := range regexp.MustCompile(`'([A-Z]{3})' => ([0-9])`).FindAllStringSubmatch(block("EVENTS_CURRENCIES"), -1) {
		phpCurrencies = append(phpCurrencies, m[1]+":"+m[2])
	}
	if goCurrencies := strings.Fields(currencyList); !slices.Equal(phpCurrencies, goCurrencies) {
		t.Errorf("currencies differ:\nphp %v\ngo  %v", phpCurrencies, goCurrencies)
	}

	phpMessages := map[string]string{}
	for _, m := range regexp.MustCompile(`'([a-z0-9_]+)' => '([^']*)'`).FindAllStringSubmatch(block("EVENTS_MESSAGES"), -1) {
		phpMessages[m[1]] = m[2]
	}
	for _, code := range allCodes() {
		if code == CodeWrongType {
			continue // its message names the expected type
		}
		if phpMessages[code] != message(code) {
			t.Errorf("message of %s: php %q, go %q", code, phpMessages[code], message(code))
		}
		delete(phpMessages, code)
	}
	for code := range phpMessages {
		t.Errorf("php has a message for unknown code %s", code)
	}

	for name, want := range map[string]int{
		"EVENTS_MAX_BODY_BYTES": DefaultMaxBodyBytes, "EVENTS_SCHEMA_VERSION": SchemaVersion, "EVENTS_MAX_MONEY": maxMoney,
		"EVENTS_SUM_TOLERANCE_MILLI": sumToleranceM, "EVENTS_MAX_ITEMS": maxItems, "EVENTS_MAX_QTY": maxQty,
		"EVENTS_MAX_META_KEYS": maxMetaKeys, "EVENTS_MAX_META_VALUE_LEN": maxMetaValueLen, "EVENTS_MAX_EMAIL_LEN": maxEmailLen,
		"EVENTS_RETRY_AFTER": int(DefaultRetryAfter / time.Second),
	} {
		m := regexp.MustCompile(`const ` + name + ` = ([0-9]+);`).FindSubmatch(src)
		if m == nil {
			t.Errorf("events.php: no const %s", name)
			continue
		}
		if got, _ := strconv.Atoi(string(m[1])); got != want {
			t.Errorf("%s = %d in PHP, %d in Go", name, got, want)
		}
	}
}
