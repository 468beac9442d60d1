package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/internal/filestamp"
)

// certStore serves the configured certificates by SNI and swaps in a new
// set, built whole, when the files change. Handshakes read the current set
// through an atomic pointer: a reload never blocks one, and connections
// already open keep the certificate they were opened with.
type certStore struct {
	files []CertFiles
	log   *zap.Logger
	cur   atomic.Pointer[certSet]
	// seen is the stamps of the files the current set was loaded from;
	// only the reload loop touches it.
	seen []filestamp.Stamp
}

// certSet is one loaded generation of the certificates.
type certSet struct {
	all    []*tls.Certificate
	byName map[string][]*tls.Certificate // exact DNS names, lower case
	wild   map[string][]*tls.Certificate // "*.example.com" under "example.com"
}

func newCertStore(files []CertFiles, log *zap.Logger) (*certStore, error) {
	s := &certStore{files: files, log: log}
	set, stamps, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(set)
	s.seen = stamps
	return s, nil
}

// load reads every pair into a new set.
func (s *certStore) load() (*certSet, []filestamp.Stamp, error) {
	set := &certSet{byName: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}}
	var stamps []filestamp.Stamp
	for i, f := range s.files {
		// Stamps first: a file replaced while it is read is read again on
		// the next check.
		for _, p := range []string{f.CertFile, f.KeyFile} {
			st, err := filestamp.Of(p)
			if err != nil {
				return nil, nil, fmt.Errorf("tls.certificates[%d]: %w", i, err)
			}
			stamps = append(stamps, st)
		}
		c, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("tls.certificates[%d] (%s, %s): %w", i, f.CertFile, f.KeyFile, err)
		}
		set.all = append(set.all, &c)
		for _, n := range c.Leaf.DNSNames {
			n = strings.ToLower(n)
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				set.wild[rest] = append(set.wild[rest], &c)
			} else {
				set.byName[n] = append(set.byName[n], &c)
			}
		}
	}
	return set, stamps, nil
}

// get is tls.Config.GetCertificate: the pairs naming the client's SNI
// exactly, else by wildcard, else the first pair; among several (an RSA and
// an ECDSA certificate for one name), the first the client supports.
func (s *certStore) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.cur.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	cands := set.byName[name]
	if len(cands) == 0 {
		if _, parent, ok := strings.Cut(name, "."); ok {
			cands = set.wild[parent]
		}
	}
	if len(cands) == 0 {
		cands = set.all[:1]
	}
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	return cands[0], nil
}

// changed reports whether any file differs from what the current set was
// loaded from. A file that cannot be read counts as changed, so the reload
// says why.
func (s *certStore) changed() bool {
	k := 0
	for _, f := range s.files {
		for _, p := range []string{f.CertFile, f.KeyFile} {
			st, err := filestamp.Of(p)
			if err != nil || st != s.seen[k] {
				return true
			}
			k++
		}
	}
	return false
}

// errUnchanged: reload found nothing to do.
var errUnchanged = errors.New("unchanged")

// reload loads the files again if they changed. On an error (a renewal
// half written: the new certificate beside the old key) the current set
// stays and the next check tries again.
func (s *certStore) reload() error {
	if !s.changed() {
		return errUnchanged
	}
	set, stamps, err := s.load()
	if err != nil {
		return err
	}
	s.cur.Store(set)
	s.seen = stamps
	return nil
}

// notAfter is each pair's expiry, by certificate file.
func (s *certStore) notAfter() map[string]time.Time {
	set := s.cur.Load()
	out := make(map[string]time.Time, len(set.all))
	for i, c := range set.all {
		out[s.files[i].CertFile] = c.Leaf.NotAfter
	}
	return out
}
