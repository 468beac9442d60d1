package legacy

import (
	"bytes"
	"errors"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// errBadFraming: the upstream's response head breaks HTTP/1.1 message syntax
// (RFC 9112) in a way that leaves its length, or where the next response on
// the connection begins, open to more than one reading. fasthttp's client
// accepts several such heads (Content-Length together with
// Transfer-Encoding, obs-fold, bare LF line ends, a space before the colon),
// so the forwarder checks the bytes itself. The answer is a 502 and the
// connection is closed, never pooled: whatever follows on it cannot be
// trusted to start a response.
var errBadFraming = errors.New("response framing")

type framingError struct{ reason string }

func (e *framingError) Error() string { return "response framing: " + e.reason }
func (e *framingError) Unwrap() error { return errBadFraming }

func badFraming(reason string) error { return &framingError{reason: reason} }

// checkResponseHeads checks the response heads at the start of b, the bytes
// read from the upstream while waiting for the answer: any interim 1xx heads,
// then the final head (a 101 is final: what follows is another protocol).
// complete reports that b holds the final head's end; when it is false, the
// capture stopped early (more than max bytes of heads), which fasthttp would
// not have parsed either.
func checkResponseHeads(b []byte, complete bool) error {
	for {
		end := bytes.Index(b, crlfcrlf)
		if end < 0 {
			if !complete {
				return badFraming("response heads longer than the capture")
			}
			return badFraming("head not ended by CRLF CRLF")
		}
		end += len(crlfcrlf)
		status, err := checkResponseHead(b[:end])
		if err != nil {
			return err
		}
		if status >= 200 || status == 101 {
			return nil
		}
		b = b[end:]
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// checkResponseHead checks one head, status line to empty line, and returns
// its status code.
func checkResponseHead(h []byte) (int, error) {
	line, rest, err := cutLine(h)
	if err != nil {
		return 0, err
	}
	// status-line = HTTP-version SP status-code SP [ reason-phrase ]
	// (RFC 9112 §4); the second SP is tolerated missing when there is no
	// reason, as several servers send it.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') ||
		line[8] != ' ' || !isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) ||
		(len(line) > 12 && line[12] != ' ') {
		return 0, badFraming("malformed status line")
	}
	if !validFieldValue(line[min(len(line), 13):]) {
		return 0, badFraming("control character in the reason phrase")
	}
	http10 := line[7] == '0'
	status := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')

	var (
		lengths, codings int
		coding           []byte
	)
	for {
		line, rest, err = cutLine(rest)
		if err != nil {
			return 0, err
		}
		if len(line) == 0 {
			break
		}
		name, value, err := splitField(line)
		if err != nil {
			return 0, err
		}
		switch {
		case ascii.EqualFold(name, "Content-Length"):
			lengths++
			if len(value) == 0 || !allDigits(value) {
				return 0, badFraming("Content-Length is not a number")
			}
		case ascii.EqualFold(name, "Transfer-Encoding"):
			codings++
			coding = value
		}
	}
	// RFC 9112 §6.3: a message with both is a smuggling attempt or a broken
	// server; with two lengths (even equal ones) the length is ambiguous.
	switch {
	case lengths > 1:
		return 0, badFraming("more than one Content-Length")
	case codings > 1:
		return 0, badFraming("more than one Transfer-Encoding")
	case lengths > 0 && codings > 0:
		return 0, badFraming("both Content-Length and Transfer-Encoding")
	case codings > 0 && http10:
		// §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
		return 0, badFraming("Transfer-Encoding in an HTTP/1.0 response")
	case codings > 0 && !ascii.EqualFold(coding, "chunked"):
		// The only coding the forwarder can frame; fasthttp refuses others.
		return 0, badFraming("Transfer-Encoding other than chunked")
	}
	return status, nil
}

// cutLine returns the first line of b without its CRLF, and the rest. A line
// ending in a bare LF, or a CR that does not end a line, is an error: some
// parsers split lines at LF alone and others do not (RFC 9112 §2.2).
func cutLine(b []byte) (line, rest []byte, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, badFraming("line without LF")
	}
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, badFraming("line ended by a bare LF")
	}
	line, rest = b[:i-1], b[i+1:]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, badFraming("bare CR")
	}
	return line, rest, nil
}

// splitField splits a field line into its name and its value without
// surrounding whitespace. The name must be a token right before the colon
// (RFC 9112 §5.1: no whitespace there), the line must not be an obs-fold
// continuation (§5.2), and the value must hold no control character but HTAB.
func splitField(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, badFraming("obs-fold continuation line")
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, badFraming("field line without a name and colon")
	}
	name = line[:i]
	for _, c := range name {
		if !ascii.IsTokenChar(c) {
			return nil, nil, badFraming("field name is not a token")
		}
	}
	value = bytes.Trim(line[i+1:], " \t")
	if !validFieldValue(value) {
		return nil, nil, badFraming("control character in a field value")
	}
	return name, value, nil
}

// validFieldValue: field-value bytes are HTAB, SP, VCHAR and obs-text (RFC
// 9110 §5.5).
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
