package capture

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriterStopsAtItsCapAndReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	w, err := Open(path, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{Time: time.Unix(0, 0), Route: "r", Method: "POST", URI: "/e", Body: strings.Repeat("x", 200)}
	for range 10 {
		w.Write(rec)
	}
	bin := rec
	bin.Body, bin.BodyBase64 = "", []byte{0xff, 0x00, 0xfe}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Write(bin) {
		t.Error("a closed writer took a record")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 1000 || w.Written() == 0 || w.Written()+w.Dropped() != 11 {
		t.Errorf("file %d bytes, written %d, dropped %d; want at most 1000 bytes and every record accounted for", st.Size(), w.Written(), w.Dropped())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	if err := Read(f, func(r Record) error {
		n++
		if string(r.BodyBytes()) != rec.Body {
			t.Errorf("body %q", r.BodyBytes())
		}
		return nil
	}); err != nil || uint64(n) != w.Written() {
		t.Errorf("read %d records (%v), want %d", n, err, w.Written())
	}
}

func TestReadRejectsWhatIsNotACapture(t *testing.T) {
	for _, give := range []string{"not json\n", `{"route":"r"}` + "\n"} {
		if err := Read(strings.NewReader(give), func(Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "capture line 1") {
			t.Errorf("Read(%q) = %v, want an error naming line 1", give, err)
		}
	}
}
