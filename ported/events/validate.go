package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/strangler-proxy/strangler/internal/ascii"
	"github.com/strangler-proxy/strangler/ported/campaign"
)

// SchemaVersion is the forwarded event's schema_version.
const SchemaVersion = 1

// Event is an accepted event, normalised and enriched, as it is forwarded.
// It owns its memory: nothing in it aliases the request body.
type Event struct {
	Type            string
	UserID          string
	SessionID       string    // "" when absent
	OccurredAt      time.Time // UTC, truncated to the millisecond when forwarded
	Country         string    // upper case
	Currency        string    // upper case; "" unless purchase or refund
	MinorUnits      int       // the currency's fraction digits
	Amount          int64     // in minor units of Currency; 0 when Currency is ""
	Items           []Item    // nil when absent
	OriginalEventID string    // refunds only
	CampaignID      string    // "" when absent
	AdvertiserID    string    // the campaign's; "" without a campaign
	EmailSHA256     string    // hex SHA-256 of the trimmed, lower-cased e-mail; "" when absent
	Metadata        []Meta    // sorted by key (byte order); nil when absent or empty
}

// Item is one line of a purchase or refund.
type Item struct {
	SKU   string
	Qty   int64
	Price int64 // in minor units of the event's currency
}

// Meta is one metadata entry.
type Meta struct{ Key, Value string }

// Violation is one broken rule, reported in a 422.
type Violation struct {
	Field   string // JSON path: "amount", "items[2].price", "metadata.color", or an unknown key
	Code    string // one of the Code* constants
	Message string
}

// Validate parses raw and checks every rule of CONTRACT.md at time now. It
// returns a parse error (ErrInvalidUTF8, ErrMalformedJSON, ErrNotObject),
// ErrNoCampaignData, or the violations in contract order, or none and the
// forwarded Event.
// It is pure: no I/O, no clock, campaigns is only read.
func Validate(raw []byte, now time.Time, campaigns campaign.Lookup) (Event, []Violation, error) {
	var v validator
	ev, err := v.run(raw, now, campaigns)
	if err != nil {
		return Event{}, nil, err
	}
	return ev, slices.Clip(v.errs), nil
}

// validator holds the scratch space of one validation; the handler pools
// them so that a request allocates only what the Event keeps.
type validator struct {
	p         parser
	errs      []Violation
	fields    [numFields]int32
	keys      []keyRef
	campaigns campaign.Lookup
	// noCampaigns: a campaign was named and the lookup had no data loaded.
	noCampaigns bool
	now         instant
	buf         []byte // scratch: decoded names, e-mail, response bodies
	body        []byte // a streamed request body, read by the handler
}

// keyRef is an object member being sorted: its decoded name and value node.
type keyRef struct {
	name []byte
	val  int32
}

func (v *validator) reset() {
	v.errs = v.errs[:0]
	v.keys = v.keys[:0]
	v.campaigns = nil
	v.noCampaigns = false
}

func (v *validator) add(field, code string) {
	v.errs = append(v.errs, Violation{Field: field, Code: code, Message: message(code)})
}

func (v *validator) wrongType(field, want string) {
	v.errs = append(v.errs, Violation{Field: field, Code: CodeWrongType, Message: want})
}

func (v *validator) node(i int32) *node { return &v.p.nodes[i] }

// str returns a string node's decoded bytes. Unescaped strings (nearly all)
// are the source bytes themselves; the rest are decoded into fresh memory,
// since callers keep several at once.
func (v *validator) str(n *node) []byte {
	if !n.esc {
		return v.p.raw(n)
	}
	return v.p.appendString(nil, n)
}

// members collects an object's members as keyRefs sorted by name, keeping
// only the last of duplicate names — PHP's stdClass keeps the last value.
// It reuses v.keys from index from on and returns the new tail.
func (v *validator) members(obj int32, from int) []keyRef {
	v.keys = v.keys[:from]
	for k := v.node(obj).first; k != none; k = v.node(k).next {
		v.keys = append(v.keys, keyRef{name: v.str(v.node(k)), val: v.node(k).first})
	}
	ks := v.keys[from:]
	slices.SortStableFunc(ks, func(a, b keyRef) int { return bytes.Compare(a.name, b.name) })
	out := ks[:0]
	for i := range ks {
		if i+1 < len(ks) && bytes.Equal(ks[i].name, ks[i+1].name) {
			continue // a later duplicate follows; the stable sort kept input order
		}
		out = append(out, ks[i])
	}
	v.keys = v.keys[:from+len(out)]
	return out
}

// slot returns field f's value node, or none after reporting it missing
// when required or present when forbidden for typ.
func (v *validator) slot(f int, typ string) int32 {
	n := v.fields[f]
	required, forbidden := presence(f, typ)
	switch {
	case n == none && required:
		v.add(fieldName(f), CodeRequired)
	case n != none && forbidden:
		v.add(fieldName(f), CodeNotAllowed)
		return none
	}
	return n
}

// stringField returns field f's decoded string, or nil after reporting a
// wrong type. ok is false when the field is absent or not a string.
func (v *validator) stringField(f int, typ string) ([]byte, bool) {
	i := v.slot(f, typ)
	if i == none {
		return nil, false
	}
	n := v.node(i)
	if n.kind != kindString {
		v.wrongType(fieldName(f), wantString)
		return nil, false
	}
	return v.str(n), true
}

func (v *validator) run(raw []byte, now time.Time, campaigns campaign.Lookup) (Event, error) {
	v.reset()
	v.campaigns = campaigns
	v.now = instantOf(now)
	root, err := v.p.parse(raw)
	if err != nil {
		return Event{}, err
	}
	if v.node(root).kind != kindObject {
		return Event{}, ErrNotObject
	}
	for i := range v.fields {
		v.fields[i] = none
	}
	var unknown bool
	for k := v.node(root).first; k != none; k = v.node(k).next {
		kn := v.node(k)
		name := v.p.raw(kn)
		if kn.esc {
			v.buf = v.p.appendString(v.buf[:0], kn)
			name = v.buf
		}
		if f := fieldOf(name); f >= 0 {
			v.fields[f] = kn.first // a later duplicate wins, as in PHP
		} else {
			unknown = true
		}
	}

	var ev Event
	typ := v.checkType()
	ev.Type = typ
	if s, ok := v.stringField(fUserID, typ); ok {
		if userID(s) {
			ev.UserID = string(s)
		} else {
			v.add("user_id", CodeUserIDFormat)
		}
	}
	if s, ok := v.stringField(fSessionID, typ); ok {
		if sessionID(s) {
			ev.SessionID = string(s)
		} else {
			v.add("session_id", CodeSessionIDFormat)
		}
	}
	occurred, occurredOK := v.checkOccurredAt(typ)
	ev.OccurredAt = occurred.time()
	if s, ok := v.stringField(fCountry, typ); ok {
		if cc, ok := country(s); ok {
			ev.Country = cc
		} else {
			v.add("country", CodeCountryUnknown)
		}
	}
	minor := -1 // unknown currency: precision and sum rules cannot run
	if s, ok := v.stringField(fCurrency, typ); ok {
		if cur, m, ok := currency(s); ok {
			ev.Currency, ev.MinorUnits, minor = cur, m, m
		} else {
			v.add("currency", CodeCurrencyUnknown)
		}
	}
	amount, amountOK := v.checkAmount(typ, minor)
	if minor >= 0 && amountOK {
		ev.Amount = amount / pow10(milliDigits-minor)
	}
	ev.Items = v.checkItems(typ, minor, amount, amountOK)
	if s, ok := v.stringField(fOriginalEventID, typ); ok {
		if uuidV4(s) {
			ev.OriginalEventID = string(s)
		} else {
			v.add("original_event_id", CodeOriginalIDFmt)
		}
	}
	if s, ok := v.stringField(fCampaignID, typ); ok {
		v.checkCampaign(&ev, s, occurred, occurredOK)
	}
	if s, ok := v.stringField(fEmail, typ); ok {
		s = trimPHP(s)
		v.buf = v.buf[:0]
		for _, c := range s {
			v.buf = append(v.buf, ascii.Lower(c))
		}
		if email(v.buf) {
			sum := sha256.Sum256(v.buf)
			ev.EmailSHA256 = hex.EncodeToString(sum[:])
		} else {
			v.add("email", CodeEmailFormat)
		}
	}
	ev.Metadata = v.checkMetadata()
	for f := fEventID; f < numFields; f++ {
		if v.fields[f] != none {
			v.add(fieldName(f), CodeServerAssigned)
		}
	}
	if unknown {
		for _, k := range v.members(root, 0) {
			if fieldOf(k.name) < 0 {
				v.add(string(k.name), CodeUnknownField)
			}
		}
	}
	if v.noCampaigns {
		return ev, ErrNoCampaignData
	}
	return ev, nil
}

// ErrNoCampaignData says the event names a campaign while the campaign
// data has never loaded (the hot cache's first load has not succeeded):
// whether it exists cannot be told yet, and a campaign_not_found would be
// a permanent answer for a passing state. The handler answers 503 with
// Retry-After, whatever else the event breaks.
var ErrNoCampaignData = errors.New("campaign data not loaded yet")

// unloaded is a campaign.Lookup that can say it holds nothing yet
// (*hotcache.Cache).
type unloaded interface {
	Loaded() bool
}

func (v *validator) checkType() string {
	i := v.fields[fType]
	if i == none {
		v.add("type", CodeRequired)
		return ""
	}
	n := v.node(i)
	if n.kind != kindString {
		v.wrongType("type", wantString)
		return ""
	}
	t, ok := eventType(v.str(n))
	if !ok {
		v.add("type", CodeTypeUnknown)
	}
	return t
}

func (v *validator) checkOccurredAt(typ string) (instant, bool) {
	s, ok := v.stringField(fOccurredAt, typ)
	if !ok {
		return instant{}, false
	}
	t, ok := parseRFC3339(s)
	switch {
	case !ok:
		v.add("occurred_at", CodeOccurredAtFmt)
		return instant{}, false
	case t.before(instant{v.now.sec - maxAge, v.now.nsec}):
		v.add("occurred_at", CodeOccurredAtOld)
		return instant{}, false
	case (instant{v.now.sec + maxAhead, v.now.nsec}).before(t):
		v.add("occurred_at", CodeOccurredAtAhead)
		return instant{}, false
	}
	return t, true
}

func (v *validator) checkAmount(typ string, minor int) (int64, bool) {
	i := v.slot(fAmount, typ)
	if i == none {
		return 0, false
	}
	n := v.node(i)
	if n.kind != kindInt && n.kind != kindFloat {
		v.wrongType("amount", wantNumber)
		return 0, false
	}
	m, res := money(&v.p, n, minor)
	switch res {
	case moneyNotPositive:
		v.add("amount", CodeAmountNotPos)
	case moneyTooLarge:
		v.add("amount", CodeAmountTooLarge)
	case moneyPrecision:
		v.add("amount", CodeAmountPrecision)
	}
	return m, res == moneyOK
}

func (v *validator) checkItems(typ string, minor int, amount int64, amountOK bool) []Item {
	i := v.slot(fItems, typ)
	if i == none {
		return nil
	}
	arr := v.node(i)
	if arr.kind != kindArray {
		v.wrongType("items", wantArray)
		return nil
	}
	if arr.count < 1 || arr.count > maxItems {
		v.add("items", CodeItemsCount)
		return nil
	}
	items := make([]Item, 0, arr.count)
	allOK := true
	var sum int64
	idx := 0
	for e := arr.first; e != none; e = v.node(e).next {
		it, milli, ok := v.checkItem(e, idx, minor)
		if ok {
			items = append(items, it)
			sum += it.Qty * milli
		}
		allOK = allOK && ok
		idx++
	}
	if !allOK {
		return nil
	}
	if typ == TypePurchase && amountOK && minor >= 0 {
		if d := sum - amount; d > sumToleranceM || d < -sumToleranceM {
			v.add("items", CodeItemsSum)
		}
	}
	return items
}

// checkItem checks items[idx] and returns it with its price in milli.
func (v *validator) checkItem(e int32, idx int, minor int) (Item, int64, bool) {
	// Paths are built only for violations: the valid path allocates nothing.
	item := func() string { return "items[" + strconv.Itoa(idx) + "]" }
	path := func(member string) string { return item() + "." + member } // member may be ""
	obj := v.node(e)
	if obj.kind != kindObject {
		v.wrongType(item(), wantObject)
		return Item{}, 0, false
	}
	skuN, qtyN, priceN := int32(none), int32(none), int32(none)
	unknown := false
	for k := obj.first; k != none; k = v.node(k).next {
		kn := v.node(k)
		name := v.p.raw(kn)
		if kn.esc {
			v.buf = v.p.appendString(v.buf[:0], kn)
			name = v.buf
		}
		switch string(name) {
		case "sku":
			skuN = kn.first
		case "qty":
			qtyN = kn.first
		case "price":
			priceN = kn.first
		default:
			unknown = true
		}
	}
	var it Item
	var milli int64
	ok := true
	switch {
	case skuN == none:
		v.add(path("sku"), CodeRequired)
		ok = false
	case v.node(skuN).kind != kindString:
		v.wrongType(path("sku"), wantString)
		ok = false
	default:
		if s := v.str(v.node(skuN)); sku(s) {
			it.SKU = string(s)
		} else {
			v.add(path("sku"), CodeItemSKUFormat)
			ok = false
		}
	}
	switch {
	case qtyN == none:
		v.add(path("qty"), CodeRequired)
		ok = false
	case v.node(qtyN).kind != kindInt:
		v.wrongType(path("qty"), wantInteger)
		ok = false
	case v.node(qtyN).i < 1 || v.node(qtyN).i > maxQty:
		v.add(path("qty"), CodeItemQtyRange)
		ok = false
	default:
		it.Qty = v.node(qtyN).i
	}
	switch {
	case priceN == none:
		v.add(path("price"), CodeRequired)
		ok = false
	case v.node(priceN).kind != kindInt && v.node(priceN).kind != kindFloat:
		v.wrongType(path("price"), wantNumber)
		ok = false
	default:
		m, res := money(&v.p, v.node(priceN), minor)
		switch res {
		case moneyNotPositive:
			v.add(path("price"), CodePriceNotPos)
		case moneyTooLarge:
			v.add(path("price"), CodePriceTooLarge)
		case moneyPrecision:
			v.add(path("price"), CodePricePrecision)
		}
		milli = m
		ok = ok && res == moneyOK
		if minor >= 0 {
			it.Price = m / pow10(milliDigits-minor)
		}
	}
	if unknown {
		mark := len(v.keys)
		for _, k := range v.members(e, mark) {
			switch string(k.name) {
			case "sku", "qty", "price":
			default:
				v.add(path(string(k.name)), CodeUnknownField)
				ok = false
			}
		}
		v.keys = v.keys[:mark]
	}
	return it, milli, ok
}

func (v *validator) checkCampaign(ev *Event, s []byte, occurred instant, occurredOK bool) {
	if !campaignID(s) {
		v.add("campaign_id", CodeCampaignIDFmt)
		return
	}
	var c *campaign.Campaign
	ok := false
	if v.campaigns != nil {
		c, ok = v.campaigns.Campaign(string(s))
	}
	if !ok {
		if l, can := v.campaigns.(unloaded); can && !l.Loaded() {
			v.noCampaigns = true
			return
		}
		v.add("campaign_id", CodeCampaignUnknown)
		return
	}
	valid := true
	if occurredOK && !c.ActiveAt(occurred.time()) {
		v.add("campaign_id", CodeCampaignOff)
		valid = false
	}
	if ev.Country != "" && !c.AllowsCountry(ev.Country) {
		v.add("campaign_id", CodeCampaignCountry)
		valid = false
	}
	if valid {
		ev.CampaignID, ev.AdvertiserID = c.ID, c.AdvertiserID
	}
}

func (v *validator) checkMetadata() []Meta {
	i := v.fields[fMetadata]
	if i == none {
		return nil
	}
	if v.node(i).kind != kindObject {
		v.wrongType("metadata", wantObject)
		return nil
	}
	if v.node(i).count == 0 {
		return nil
	}
	ks := v.members(i, 0)
	if len(ks) > maxMetaKeys {
		v.add("metadata", CodeMetaTooMany)
		return nil
	}
	meta := make([]Meta, 0, len(ks))
	allOK := true
	for _, k := range ks {
		ok := true
		if !metaKey(k.name) {
			v.add(metaField(k.name), CodeMetaKeyFormat)
			ok = false
		}
		var s []byte
		if n := v.node(k.val); n.kind != kindString {
			v.add(metaField(k.name), CodeMetaValueType)
			ok = false
		} else if s = v.str(n); len(s) > maxMetaValueLen && runeCount(s) > maxMetaValueLen {
			v.add(metaField(k.name), CodeMetaValueLong)
			ok = false
		}
		if ok && allOK {
			meta = append(meta, Meta{Key: string(k.name), Value: string(s)})
		}
		allOK = allOK && ok
	}
	if !allOK {
		return nil
	}
	return meta
}

func metaField(key []byte) string { return "metadata." + string(key) }

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}
