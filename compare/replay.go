package compare

import "time"

// Replayed reports whether resp, the legacy answer to a request carrying
// an Idempotency-Key, holds a time from before its request's window w at
// a path that is not known to be computed: the answer may be the replay
// of one given earlier, which is neither evidence about the path nor
// comparable with an answer made now. A number counts as a time only at a
// path whose legacy values showed it is one. root is as for Observe.
func (p *Profile) Replayed(resp Response, root string, w Window) bool {
	o := observation{w: w, check: true}
	p.visit(resp, root, &o)
	return o.replayed
}

// visit walks resp under p's lock (a read lock for a check) with o. A
// check or a replay needs the answer's window; an observation counts as
// one more answer.
func (p *Profile) visit(resp Response, root string, o *observation) {
	if p == nil || (o.check || o.replay) && !o.w.Known() {
		return
	}
	t := parsedAnswer(resp)
	if t == nil {
		return
	}
	defer putTape(t)
	var buf [256]byte
	if o.check {
		p.mu.RLock()
		defer p.mu.RUnlock()
	} else {
		p.mu.Lock()
		defer p.mu.Unlock()
	}
	if !o.check && !o.replay {
		p.answers++
	}
	p.walk(t, 0, append(buf[:0], root...), o)
}

// ObserveReplay learns from resp, an answer Replayed judged a replay,
// only what a replay can show: each time before its window counts toward
// making a path that never showed a time within its window computed
// (MinObservations of them), so that a path holding past times at every
// keyed request does not keep every one of them judged a replay. Strings
// only, as in Replayed.
func (p *Profile) ObserveReplay(resp Response, root string, w Window) {
	p.visit(resp, root, &observation{w: w, replay: true})
}

// replayedLeaf is ObserveReplay's part at one leaf. Caller holds mu.
func (p *Profile) replayedLeaf(pp *pathProfile, tpl []byte, t *tape, i int32, w Window) {
	if t.nodes[i].kind != jString {
		return
	}
	at, l, ok := parseClockString(t.str(i))
	if !ok || w.offset(at, l.precision(), p.skew) >= 0 {
		return
	}
	if pp == nil {
		if len(p.paths) >= p.maxPaths {
			return
		}
		pp = &pathProfile{}
		p.paths[string(tpl)] = pp
		p.learning++
	}
	if pp.seen == 0 && pp.state == stateLearning {
		pp.clock, pp.layout = true, l
		p.keyedBefore(pp)
	}
}

// before reports whether the value at node i, at the path of pp (nil: a
// path never seen), is a time before w, at a path that is or may be the
// request's clock. Caller holds mu.
func (p *Profile) before(pp *pathProfile, t *tape, i int32, num bool, w Window) bool {
	switch {
	case pp == nil && num:
		return false
	case pp != nil && (!pp.clock || (pp.state != stateLearning && pp.state != stateClock)):
		return false
	}
	var (
		at time.Time
		l  timeLayout
		ok bool
	)
	if num {
		at, l, ok = parseClockNumber(t.lit(i))
	} else {
		at, l, ok = parseClockString(t.str(i))
	}
	if !ok || (pp != nil && pp.seen > 0 && !l.sameBut(pp.layout)) {
		return false
	}
	prec := l.precision()
	if pp != nil && pp.seen > 0 {
		prec = max(prec, pp.layout.precision())
	}
	return w.offset(at, prec, p.skew) < 0
}
