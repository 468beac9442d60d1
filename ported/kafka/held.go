package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// Interface guard: the producer reads back what a spool delivered.
var _ delivery.Resumer = (*Producer)(nil)

// Reading back is done in chunks from the end of each partition, growing
// until a stop condition of delivery.HeldQuery is met or heldMaxRecords
// were read from the partition. Past that bound the rest is resent: a
// duplicate, never a loss.
const (
	heldFirstChunk = 512
	heldMaxChunk   = 16 << 10
	heldMaxRecords = 1 << 20
)

// Held reads the end of each partition q.Keys hash to (the hash partitioner
// the producer uses) and returns the entries of spool q.Spool in [q.From,
// q.To] it finds there. It waits until the producer is connected, then
// gives the reading itself at most resume_timeout; on timeout it returns
// what it found with the error.
func (p *Producer) Held(ctx context.Context, q delivery.HeldQuery) ([]uint64, error) {
	select {
	case <-p.connected:
	case <-p.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ResumeTimeout)
	defer cancel()
	p.mu.RLock()
	client := p.client
	closed := p.closed
	p.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	parts, err := p.heldPartitions(client, q.Keys)
	if err != nil {
		return nil, err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("kafka resume: %w", err)
	}
	defer consumer.Close()
	var held []uint64
	var errs []error
	start := time.Now()
	read := 0
	for _, part := range parts {
		n, err := p.scanPartition(ctx, client, consumer, part, q, &held)
		read += n
		if err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", part, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	slices.Sort(held)
	held = slices.Compact(held)
	p.log.Info("read back what Kafka holds of the spool",
		zap.String("spool", q.Spool), zap.Uint64("from", q.From), zap.Uint64("to", q.To),
		zap.Int("partitions", len(parts)), zap.Int("records_read", read), zap.Int("held", len(held)),
		zap.Duration("took", time.Since(start)))
	if len(errs) > 0 {
		return held, fmt.Errorf("kafka resume: %w", errors.Join(errs...))
	}
	return held, nil
}

// heldPartitions are the partitions keys hash to, ascending; every
// partition when a key is empty (such messages go to a random one).
func (p *Producer) heldPartitions(client sarama.Client, keys [][]byte) ([]int32, error) {
	all, err := client.Partitions(p.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("kafka resume: partitions of %s: %w", p.cfg.Topic, err)
	}
	n := int32(len(all))
	hash := sarama.NewHashPartitioner(p.cfg.Topic)
	seen := make(map[int32]bool)
	for _, k := range keys {
		if len(k) == 0 {
			return all, nil
		}
		part, err := hash.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(k)}, n)
		if err != nil {
			return nil, fmt.Errorf("kafka resume: %w", err)
		}
		seen[part] = true
	}
	out := make([]int32, 0, len(seen))
	for part := range seen {
		out = append(out, part)
	}
	slices.Sort(out)
	return out, nil
}

// scanPartition reads partition part backwards in growing chunks, adding
// the indexes of q's spool in [q.From, q.To] to held, until a chunk shows a
// record that proves nothing older matters (q.Floor, q.Since), the start of
// the log, or heldMaxRecords. It returns the records read.
func (p *Producer) scanPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer, part int32,
	q delivery.HeldQuery, held *[]uint64) (int, error) {
	end, err := client.GetOffset(p.cfg.Topic, part, sarama.OffsetNewest)
	if err != nil {
		return 0, err
	}
	low, err := client.GetOffset(p.cfg.Topic, part, sarama.OffsetOldest)
	if err != nil {
		return 0, err
	}
	read := 0
	for chunk := int64(heldFirstChunk); end > low && read < heldMaxRecords; chunk = min(2*chunk, heldMaxChunk) {
		from := max(low, end-chunk)
		n, done, err := p.scanRange(ctx, consumer, part, from, end, q, held)
		read += n
		if err != nil || done {
			return read, err
		}
		end = from
	}
	return read, nil
}

// scanRange reads offsets [from, end) of part; done says a stop condition
// was met in it.
func (p *Producer) scanRange(ctx context.Context, consumer sarama.Consumer, part int32, from, end int64,
	q delivery.HeldQuery, held *[]uint64) (n int, done bool, err error) {
	pc, err := consumer.ConsumePartition(p.cfg.Topic, part, from)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		return 0, true, nil // retention removed it meanwhile: nothing older either
	}
	if err != nil {
		return 0, false, err
	}
	defer func() {
		pc.AsyncClose()
		for range pc.Messages() {
		}
	}()
	for {
		select {
		case m := <-pc.Messages():
			if m.Offset >= end {
				return n, done, nil // the offsets before end were compacted away
			}
			n++
			if !m.Timestamp.IsZero() && m.Timestamp.Before(q.Since) {
				done = true
			}
			for _, h := range m.Headers {
				if string(h.Key) != PositionHeader {
					continue
				}
				if pos, ok := parsePosition(h.Value); ok && pos.Spool == q.Spool {
					if pos.Index >= q.From && pos.Index <= q.To {
						*held = append(*held, pos.Index)
					}
					if pos.Index <= q.Floor {
						done = true
					}
				}
			}
			if m.Offset >= end-1 {
				return n, done, nil
			}
		case cerr := <-pc.Errors():
			return n, false, cerr
		case <-ctx.Done():
			return n, false, ctx.Err()
		}
	}
}
