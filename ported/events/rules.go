package events

// Violation codes: stable identifiers clients may switch on. CONTRACT.md
// (## Event intake) lists them with the order in which they are reported.
const (
	CodeRequired        = "required"
	CodeWrongType       = "wrong_type"
	CodeNotAllowed      = "not_allowed"
	CodeUnknownField    = "unknown_field"
	CodeServerAssigned  = "server_assigned"
	CodeTypeUnknown     = "type_unknown"
	CodeUserIDFormat    = "user_id_format"
	CodeSessionIDFormat = "session_id_format"
	CodeOccurredAtFmt   = "occurred_at_format"
	CodeOccurredAtOld   = "occurred_at_too_old"
	CodeOccurredAtAhead = "occurred_at_in_future"
	CodeCountryUnknown  = "country_unknown"
	CodeCurrencyUnknown = "currency_unknown"
	CodeAmountNotPos    = "amount_not_positive"
	CodeAmountTooLarge  = "amount_too_large"
	CodeAmountPrecision = "amount_precision"
	CodeItemsCount      = "items_count"
	CodeItemSKUFormat   = "item_sku_format"
	CodeItemQtyRange    = "item_qty_range"
	CodePriceNotPos     = "price_not_positive"
	CodePriceTooLarge   = "price_too_large"
	CodePricePrecision  = "price_precision"
	CodeItemsSum        = "items_sum_mismatch"
	CodeOriginalIDFmt   = "original_event_id_format"
	CodeCampaignIDFmt   = "campaign_id_format"
	CodeCampaignUnknown = "campaign_not_found"
	CodeCampaignOff     = "campaign_inactive"
	CodeCampaignCountry = "campaign_country"
	CodeEmailFormat     = "email_format"
	CodeMetaTooMany     = "metadata_too_many_keys"
	CodeMetaKeyFormat   = "metadata_key_format"
	CodeMetaValueType   = "metadata_value_type"
	CodeMetaValueLong   = "metadata_value_too_long"
)

// Limits of the rules.
const (
	maxItems        = 50
	maxQty          = 1000
	maxMetaKeys     = 20
	maxMetaValueLen = 256 // code points
	maxEmailLen     = 254 // bytes, after trimming
	maxAge          = 7 * 24 * 3600
	maxAhead        = 5 * 60
)

// Expected JSON types, named in wrong_type messages.
const (
	wantString  = "must be a string"
	wantNumber  = "must be a number"
	wantInteger = "must be an integer"
	wantArray   = "must be an array"
	wantObject  = "must be an object"
)

// message is the fixed text of each code (wrong_type says which type).
func message(code string) string {
	switch code {
	case CodeRequired:
		return "is required"
	case CodeNotAllowed:
		return "is not allowed for this event type"
	case CodeUnknownField:
		return "is not a known field"
	case CodeServerAssigned:
		return "is assigned by the server and must not be sent"
	case CodeTypeUnknown:
		return "must be one of page_view, click, signup, purchase, refund"
	case CodeUserIDFormat:
		return "must match ^u_[a-z0-9]{8,32}$"
	case CodeSessionIDFormat:
		return "must match ^s_[A-Za-z0-9]{8,64}$"
	case CodeOccurredAtFmt:
		return "must be an RFC 3339 date-time with a time zone offset"
	case CodeOccurredAtOld:
		return "must not be more than 7 days in the past"
	case CodeOccurredAtAhead:
		return "must not be more than 5 minutes in the future"
	case CodeCountryUnknown:
		return "must be an ISO 3166-1 alpha-2 country code"
	case CodeCurrencyUnknown:
		return "must be an ISO 4217 currency code"
	case CodeAmountNotPos, CodePriceNotPos:
		return "must be greater than 0"
	case CodeAmountTooLarge, CodePriceTooLarge:
		return "must not exceed 1000000000"
	case CodeAmountPrecision, CodePricePrecision:
		return "has more decimals than the currency allows"
	case CodeItemsCount:
		return "must hold 1 to 50 items"
	case CodeItemSKUFormat:
		return "must match ^[A-Z0-9][A-Z0-9-]{2,31}$"
	case CodeItemQtyRange:
		return "must be between 1 and 1000"
	case CodeItemsSum:
		return "sum of qty*price must equal amount within 0.01"
	case CodeOriginalIDFmt:
		return "must be a lower-case UUID v4"
	case CodeCampaignIDFmt:
		return "must match ^cmp_[0-9]{6}$"
	case CodeCampaignUnknown:
		return "is not a known campaign"
	case CodeCampaignOff:
		return "campaign is not active at occurred_at"
	case CodeCampaignCountry:
		return "campaign does not target country"
	case CodeEmailFormat:
		return "must be an e-mail address"
	case CodeMetaTooMany:
		return "must have at most 20 keys"
	case CodeMetaKeyFormat:
		return "key must match ^[a-z][a-z0-9_]{0,39}$"
	case CodeMetaValueType:
		return "must be a string"
	case CodeMetaValueLong:
		return "must be at most 256 characters"
	}
	return code
}

// Event types.
const (
	TypePageView = "page_view"
	TypeClick    = "click"
	TypeSignup   = "signup"
	TypePurchase = "purchase"
	TypeRefund   = "refund"
)

func eventType(s []byte) (string, bool) {
	switch string(s) {
	case TypePageView:
		return TypePageView, true
	case TypeClick:
		return TypeClick, true
	case TypeSignup:
		return TypeSignup, true
	case TypePurchase:
		return TypePurchase, true
	case TypeRefund:
		return TypeRefund, true
	}
	return "", false
}

// Top-level fields, in the order their rules run and report.
const (
	fType = iota
	fUserID
	fSessionID
	fOccurredAt
	fCountry
	fCurrency
	fAmount
	fItems
	fOriginalEventID
	fCampaignID
	fEmail
	fMetadata
	// Fields of the forwarded event a client must not send.
	fEventID
	fReceivedAt
	fEmailSHA256
	fAdvertiserID
	fSchemaVersion
	numFields
)

func fieldName(f int) string {
	switch f {
	case fType:
		return "type"
	case fUserID:
		return "user_id"
	case fSessionID:
		return "session_id"
	case fOccurredAt:
		return "occurred_at"
	case fCountry:
		return "country"
	case fCurrency:
		return "currency"
	case fAmount:
		return "amount"
	case fItems:
		return "items"
	case fOriginalEventID:
		return "original_event_id"
	case fCampaignID:
		return "campaign_id"
	case fEmail:
		return "email"
	case fMetadata:
		return "metadata"
	case fEventID:
		return "event_id"
	case fReceivedAt:
		return "received_at"
	case fEmailSHA256:
		return "email_sha256"
	case fAdvertiserID:
		return "advertiser_id"
	case fSchemaVersion:
		return "schema_version"
	}
	return ""
}

func fieldOf(key []byte) int {
	switch string(key) {
	case "type":
		return fType
	case "user_id":
		return fUserID
	case "session_id":
		return fSessionID
	case "occurred_at":
		return fOccurredAt
	case "country":
		return fCountry
	case "currency":
		return fCurrency
	case "amount":
		return fAmount
	case "items":
		return fItems
	case "original_event_id":
		return fOriginalEventID
	case "campaign_id":
		return fCampaignID
	case "email":
		return fEmail
	case "metadata":
		return fMetadata
	case "event_id":
		return fEventID
	case "received_at":
		return fReceivedAt
	case "email_sha256":
		return fEmailSHA256
	case "advertiser_id":
		return fAdvertiserID
	case "schema_version":
		return fSchemaVersion
	}
	return -1
}

// presence says whether field f is required or forbidden for typ. user_id,
// occurred_at and country are always required. With an unknown or missing
// type, type-dependent fields are neither, and their own rules still run
// when they are present.
func presence(f int, typ string) (required, forbidden bool) {
	switch f {
	case fUserID, fOccurredAt, fCountry:
		return true, false
	}
	if typ == "" {
		return false, false
	}
	money := typ == TypePurchase || typ == TypeRefund
	switch f {
	case fCurrency, fAmount:
		return money, !money
	case fItems:
		return typ == TypePurchase, !money
	case fOriginalEventID:
		return typ == TypeRefund, typ != TypeRefund
	case fEmail:
		return typ == TypeSignup, false
	}
	return false, false
}

// Patterns, written out so that they cost nothing per request. The PHP twin
// uses the equivalent preg patterns with the D modifier ($ must not match
// before a trailing newline).

// userID matches ^u_[a-z0-9]{8,32}$.
func userID(s []byte) bool {
	return len(s) >= 10 && len(s) <= 34 && s[0] == 'u' && s[1] == '_' && all(s[2:], lowerDigit)
}

// sessionID matches ^s_[A-Za-z0-9]{8,64}$.
func sessionID(s []byte) bool {
	return len(s) >= 10 && len(s) <= 66 && s[0] == 's' && s[1] == '_' && all(s[2:], alnum)
}

// sku matches ^[A-Z0-9][A-Z0-9-]{2,31}$.
func sku(s []byte) bool {
	return len(s) >= 3 && len(s) <= 32 && upperDigit(s[0]) && all(s[1:], func(c byte) bool { return upperDigit(c) || c == '-' })
}

// campaignID matches ^cmp_[0-9]{6}$.
func campaignID(s []byte) bool {
	return len(s) == 10 && string(s[:4]) == "cmp_" && all(s[4:], digit)
}

// metaKey matches ^[a-z][a-z0-9_]{0,39}$.
func metaKey(s []byte) bool {
	return len(s) >= 1 && len(s) <= 40 && s[0] >= 'a' && s[0] <= 'z' && all(s[1:], func(c byte) bool { return lowerDigit(c) || c == '_' })
}

// uuidV4 matches ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$.
func uuidV4(s []byte) bool {
	if len(s) != 36 || s[14] != '4' || (s[19] != '8' && s[19] != '9' && s[19] != 'a' && s[19] != 'b') {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !digit(c) && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// email matches ^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$ after trimming
// and lower-casing, and at most maxEmailLen bytes.
func email(s []byte) bool {
	if len(s) > maxEmailLen {
		return false
	}
	at := -1
	for i, c := range s {
		if c == '@' {
			at = i
			break
		}
	}
	if at < 1 || !all(s[:at], func(c byte) bool { return lowerDigit(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' }) {
		return false
	}
	labels, n := 0, 0
	for _, c := range s[at+1:] {
		switch {
		case c == '.':
			if n == 0 {
				return false
			}
			labels, n = labels+1, 0
		case lowerDigit(c) || c == '-':
			n++
		default:
			return false
		}
	}
	return n > 0 && labels >= 1
}

// trimPHP is PHP's trim() with its default set " \t\n\r\0\x0B" (ASCII only,
// unlike bytes.TrimSpace).
func trimPHP(s []byte) []byte {
	cut := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0 || c == 0x0B }
	for len(s) > 0 && cut(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && cut(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func all(s []byte, ok func(byte) bool) bool {
	for _, c := range s {
		if !ok(c) {
			return false
		}
	}
	return true
}

func digit(c byte) bool      { return c >= '0' && c <= '9' }
func lowerDigit(c byte) bool { return digit(c) || (c >= 'a' && c <= 'z') }
func upperDigit(c byte) bool { return digit(c) || (c >= 'A' && c <= 'Z') }
func alnum(c byte) bool      { return lowerDigit(c) || (c >= 'A' && c <= 'Z') }
