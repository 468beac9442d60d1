package monolith

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/IBM/sarama"
)

// Shipper publishes the monolith's forwarded-events file to a Kafka topic,
// line by line, as a log shipper (Filebeat, Vector, Fluent Bit) would in
// production: in file order, at least once, each line keyed by its
// event's user_id (the key the Go intake's producer uses). It starts at
// the file's end when it starts: what is already there was shipped before
// or belongs to another run. A file cut shorter (rotated, truncated) is
// read again from its start.
type Shipper struct {
	path     string
	topic    string
	producer sarama.SyncProducer
	off      int64
	partial  []byte // a line not yet terminated
	poll     time.Duration
	backoff  time.Duration
	shipped  int
	// OnError is told of each failed attempt (retried after a pause). Nil:
	// nothing is said.
	OnError func(error)
}

// ShipPoll is how often a Shipper looks for new lines.
const ShipPoll = 20 * time.Millisecond

// NewShipper connects a producer to brokers and positions at path's end
// (0 when the file does not exist yet).
func NewShipper(path string, brokers []string, topic string) (*Shipper, error) {
	sc := sarama.NewConfig()
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Retry.Max = 5
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	sc.Metadata.Full = false
	p, err := sarama.NewSyncProducer(brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("events shipper: %w", err)
	}
	s := &Shipper{path: path, topic: topic, producer: p, poll: ShipPoll, backoff: 100 * time.Millisecond}
	if st, err := os.Stat(path); err == nil {
		s.off = st.Size()
	}
	return s, nil
}

// Run ships until ctx ends, then closes the producer.
func (s *Shipper) Run(ctx context.Context) error {
	defer s.producer.Close()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.once(ctx); err != nil {
			if s.OnError != nil {
				s.OnError(err)
			}
			t.Reset(s.backoff)
			continue
		}
		t.Reset(s.poll)
	}
}

// once ships every complete line appended since the last call. A line is
// past only once Kafka acknowledged it: a failure ships it again.
func (s *Shipper) once(ctx context.Context) error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the monolith creates it with its first event
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < s.off {
		s.off, s.partial = 0, s.partial[:0]
	}
	if st.Size() == s.off {
		return nil
	}
	b, err := io.ReadAll(io.NewSectionReader(f, s.off, st.Size()-s.off))
	if err != nil {
		return err
	}
	for len(b) > 0 && ctx.Err() == nil {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.partial = append(s.partial, b...)
			s.off += int64(len(b))
			return nil
		}
		line := append(s.partial, b[:i]...)
		if len(bytes.TrimSpace(line)) > 0 {
			if err := s.ship(line); err != nil {
				return err // s.off and partial stay: the line is shipped again
			}
		}
		s.partial = s.partial[:0]
		s.off += int64(i + 1)
		b = b[i+1:]
	}
	return nil
}

func (s *Shipper) ship(line []byte) error {
	var ev struct {
		UserID string `json:"user_id"`
	}
	_ = json.Unmarshal(line, &ev) // a line that is not an event still ships, unkeyed
	msg := &sarama.ProducerMessage{Topic: s.topic, Value: sarama.ByteEncoder(bytes.Clone(line))}
	if ev.UserID != "" {
		msg.Key = sarama.StringEncoder(ev.UserID)
	}
	if _, _, err := s.producer.SendMessage(msg); err != nil {
		return fmt.Errorf("ship to %s: %w", s.topic, err)
	}
	s.shipped++
	return nil
}
