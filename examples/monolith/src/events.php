<?php
// POST /api/v1/events — the event intake. Its contract is the "Event intake"
// section of ../CONTRACT.md; ported/events is its Go twin and must answer
// byte for byte the same (ported/events/parity_test.go runs both). Every
// rule below has a counterpart there, in the same order: change both.
//
// The accepted, normalised event is appended as one JSON line to
// STRANGLER_EVENTS_FILE, where the Go twin publishes it to Kafka.
//
// Numbers: json_decode gives PHP ints for integer literals that fit 64 bits
// and floats for everything else; money is then handled as the shortest
// decimal text of that float (json_encode with serialize_precision=-1) in
// integer thousandths, never as float arithmetic.

declare(strict_types=1);

const EVENTS_MAX_BODY_BYTES = 65536;
// Retry-After of every 503 (the Go twin's events.DefaultRetryAfter).
const EVENTS_RETRY_AFTER = 5;
const EVENTS_SCHEMA_VERSION = 1;
const EVENTS_MAX_MONEY = 1000000000;
const EVENTS_SUM_TOLERANCE_MILLI = 10;
const EVENTS_MAX_ITEMS = 50;
const EVENTS_MAX_QTY = 1000;
const EVENTS_MAX_META_KEYS = 20;
const EVENTS_MAX_META_VALUE_LEN = 256;
const EVENTS_MAX_EMAIL_LEN = 254;
const EVENTS_MAX_AGE = 7 * 24 * 3600;
const EVENTS_MAX_AHEAD = 5 * 60;
const EVENTS_JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

const EVENTS_TYPES = ['page_view', 'click', 'signup', 'purchase', 'refund'];

// Top-level fields in the order their rules run, then the fields of the
// forwarded event a client must not send.
const EVENTS_FIELDS = [
    'type', 'user_id', 'session_id', 'occurred_at', 'country', 'currency', 'amount', 'items',
    'original_event_id', 'campaign_id', 'email', 'metadata',
];
const EVENTS_SERVER_FIELDS = ['event_id', 'received_at', 'email_sha256', 'advertiser_id', 'schema_version'];

const EVENTS_MESSAGES = [
    'required' => 'is required',
    'not_allowed' => 'is not allowed for this event type',
    'unknown_field' => 'is not a known field',
    'server_assigned' => 'is assigned by the server and must not be sent',
    'type_unknown' => 'must be one of page_view, click, signup, purchase, refund',
    'user_id_format' => 'must match ^u_[a-z0-9]{8,32}$',
    'session_id_format' => 'must match ^s_[A-Za-z0-9]{8,64}$',
    'occurred_at_format' => 'must be an RFC 3339 date-time with a time zone offset',
    'occurred_at_too_old' => 'must not be more than 7 days in the past',
    'occurred_at_in_future' => 'must not be more than 5 minutes in the future',
    'country_unknown' => 'must be an ISO 3166-1 alpha-2 country code',
    'currency_unknown' => 'must be an ISO 4217 currency code',
    'amount_not_positive' => 'must be greater than 0',
    'amount_too_large' => 'must not exceed 1000000000',
    'amount_precision' => 'has more decimals than the currency allows',
    'items_count' => 'must hold 1 to 50 items',
    'item_sku_format' => 'must match ^[A-Z0-9][A-Z0-9-]{2,31}$',
    'item_qty_range' => 'must be between 1 and 1000',
    'price_not_positive' => 'must be greater than 0',
    'price_too_large' => 'must not exceed 1000000000',
    'price_precision' => 'has more decimals than the currency allows',
    'items_sum_mismatch' => 'sum of qty*price must equal amount within 0.01',
    'original_event_id_format' => 'must be a lower-case UUID v4',
    'campaign_id_format' => 'must match ^cmp_[0-9]{6}$',
    'campaign_not_found' => 'is not a known campaign',
    'campaign_inactive' => 'campaign is not active at occurred_at',
    'campaign_country' => 'campaign does not target country',
    'email_format' => 'must be an e-mail address',
    'metadata_too_many_keys' => 'must have at most 20 keys',
    'metadata_key_format' => 'key must match ^[a-z][a-z0-9_]{0,39}$',
    'metadata_value_type' => 'must be a string',
    'metadata_value_too_long' => 'must be at most 256 characters',
];

// Every officially assigned ISO 3166-1 alpha-2 code.
const EVENTS_COUNTRIES = [
    'AD', 'AE', 'AF', 'AG', 'AI', 'AL', 'AM', 'AO', 'AQ', 'AR', 'AS', 'AT', 'AU', 'AW', 'AX', 'AZ',
    'BA', 'BB', 'BD', 'BE', 'BF', 'BG', 'BH', 'BI', 'BJ', 'BL', 'BM', 'BN', 'BO', 'BQ', 'BR', 'BS',
    'BT', 'BV', 'BW', 'BY', 'BZ', 'CA', 'CC', 'CD', 'CF', 'CG', 'CH', 'CI', 'CK', 'CL', 'CM', 'CN',
    'CO', 'CR', 'CU', 'CV', 'CW', 'CX', 'CY', 'CZ', 'DE', 'DJ', 'DK', 'DM', 'DO', 'DZ', 'EC', 'EE',
    'EG', 'EH', 'ER', 'ES', 'ET', 'FI', 'FJ', 'FK', 'FM', 'FO', 'FR', 'GA', 'GB', 'GD', 'GE', 'GF',
    'GG', 'GH', 'GI', 'GL', 'GM', 'GN', 'GP', 'GQ', 'GR', 'GS', 'GT', 'GU', 'GW', 'GY', 'HK', 'HM',
    'HN', 'HR', 'HT', 'HU', 'ID', 'IE', 'IL', 'IM', 'IN', 'IO', 'IQ', 'IR', 'IS', 'IT', 'JE', 'JM',
    'JO', 'JP', 'KE', 'KG', 'KH', 'KI', 'KM', 'KN', 'KP', 'KR', 'KW', 'KY', 'KZ', 'LA', 'LB', 'LC',
    'LI', 'LK', 'LR', 'LS', 'LT', 'LU', 'LV', 'LY', 'MA', 'MC', 'MD', 'ME', 'MF', 'MG', 'MH', 'MK',
    'ML', 'MM', 'MN', 'MO', 'MP', 'MQ', 'MR', 'MS', 'MT', 'MU', 'MV', 'MW', 'MX', 'MY', 'MZ', 'NA',
    'NC', 'NE', 'NF', 'NG', 'NI', 'NL', 'NO', 'NP', 'NR', 'NU', 'NZ', 'OM', 'PA', 'PE', 'PF', 'PG',
    'PH', 'PK', 'PL', 'PM', 'PN', 'PR', 'PS', 'PT', 'PW', 'PY', 'QA', 'RE', 'RO', 'RS', 'RU', 'RW',
    'SA', 'SB', 'SC', 'SD', 'SE', 'SG', 'SH', 'SI', 'SJ', 'SK', 'SL', 'SM', 'SN', 'SO', 'SR', 'SS',
    'ST', 'SV', 'SX', 'SY', 'SZ', 'TC', 'TD', 'TF', 'TG', 'TH', 'TJ', 'TK', 'TL', 'TM', 'TN', 'TO',
    'TR', 'TT', 'TV', 'TW', 'TZ', 'UA', 'UG', 'UM', 'US', 'UY', 'UZ', 'VA', 'VC', 'VE', 'VG', 'VI',
    'VN', 'VU', 'WF', 'WS', 'YE', 'YT', 'ZA', 'ZM', 'ZW',
];

// ISO 4217 codes of currencies in circulation => minor unit digits.
const EVENTS_CURRENCIES = [
    'AED' => 2, 'AFN' => 2, 'ALL' => 2, 'AMD' => 2, 'AOA' => 2, 'ARS' => 2, 'AUD' => 2, 'AWG' => 2,
    'AZN' => 2, 'BAM' => 2, 'BBD' => 2, 'BDT' => 2, 'BGN' => 2, 'BHD' => 3, 'BIF' => 0, 'BMD' => 2,
    'BND' => 2, 'BOB' => 2, 'BRL' => 2, 'BSD' => 2, 'BTN' => 2, 'BWP' => 2, 'BYN' => 2, 'BZD' => 2,
    'CAD' => 2, 'CDF' => 2, 'CHF' => 2, 'CLP' => 0, 'CNY' => 2, 'COP' => 2, 'CRC' => 2, 'CUP' => 2,
    'CVE' => 2, 'CZK' => 2, 'DJF' => 0, 'DKK' => 2, 'DOP' => 2, 'DZD' => 2, 'EGP' => 2, 'ERN' => 2,
    'ETB' => 2, 'EUR' => 2, 'FJD' => 2, 'FKP' => 2, 'GBP' => 2, 'GEL' => 2, 'GHS' => 2, 'GIP' => 2,
    'GMD' => 2, 'GNF' => 0, 'GTQ' => 2, 'GYD' => 2, 'HKD' => 2, 'HNL' => 2, 'HTG' => 2, 'HUF' => 2,
    'IDR' => 2, 'ILS' => 2, 'INR' => 2, 'IQD' => 3, 'IRR' => 2, 'ISK' => 0, 'JMD' => 2, 'JOD' => 3,
    'JPY' => 0, 'KES' => 2, 'KGS' => 2, 'KHR' => 2, 'KMF' => 0, 'KPW' => 2, 'KRW' => 0, 'KWD' => 3,
    'KYD' => 2, 'KZT' => 2, 'LAK' => 2, 'LBP' => 2, 'LKR' => 2, 'LRD' => 2, 'LSL' => 2, 'LYD' => 3,
    'MAD' => 2, 'MDL' => 2, 'MGA' => 2, 'MKD' => 2, 'MMK' => 2, 'MNT' => 2, 'MOP' => 2, 'MRU' => 2,
    'MUR' => 2, 'MVR' => 2, 'MWK' => 2, 'MXN' => 2, 'MYR' => 2, 'MZN' => 2, 'NAD' => 2, 'NGN' => 2,
    'NIO' => 2, 'NOK' => 2, 'NPR' => 2, 'NZD' => 2, 'OMR' => 3, 'PAB' => 2, 'PEN' => 2, 'PGK' => 2,
    'PHP' => 2, 'PKR' => 2, 'PLN' => 2, 'PYG' => 0, 'QAR' => 2, 'RON' => 2, 'RSD' => 2, 'RUB' => 2,
    'RWF' => 0, 'SAR' => 2, 'SBD' => 2, 'SCR' => 2, 'SDG' => 2, 'SEK' => 2, 'SGD' => 2, 'SHP' => 2,
    'SLE' => 2, 'SOS' => 2, 'SRD' => 2, 'SSP' => 2, 'STN' => 2, 'SVC' => 2, 'SYP' => 2, 'SZL' => 2,
    'THB' => 2, 'TJS' => 2, 'TMT' => 2, 'TND' => 3, 'TOP' => 2, 'TRY' => 2, 'TTD' => 2, 'TWD' => 2,
    'TZS' => 2, 'UAH' => 2, 'UGX' => 0, 'USD' => 2, 'UYU' => 2, 'UZS' => 2, 'VED' => 2, 'VES' => 2,
    'VND' => 0, 'VUV' => 0, 'WST' => 2, 'XAF' => 0, 'XCD' => 2, 'XCG' => 2, 'XOF' => 0, 'XPF' => 0,
    'YER' => 2, 'ZAR' => 2, 'ZMW' => 2, 'ZWG' => 2,
];

function events_handle(): void
{
    // Shortest round-trip float text, which the money rules rely on (it is
    // PHP's default; stated because the rules break under any other value).
    ini_set('serialize_precision', '-1');
    $rid = events_request_id();

    if (!events_json_content_type((string)($_SERVER['CONTENT_TYPE'] ?? ''))) {
        events_fail(415, 'unsupported_media_type', 'Content-Type must be application/json', $rid);
        return;
    }
    $body = file_get_contents('php://input', false, null, 0, EVENTS_MAX_BODY_BYTES + 1);
    if ($body === false) {
        $body = '';
    }
    if (strlen($body) > EVENTS_MAX_BODY_BYTES) {
        events_fail(413, 'body_too_large', 'request body is larger than the limit', $rid);
        return;
    }

    $now = events_now();
    $idem = null;
    if (isset($_SERVER['HTTP_IDEMPOTENCY_KEY'])) {
        $key = events_idempotency_key((string)$_SERVER['HTTP_IDEMPOTENCY_KEY']);
        if ($key === null) {
            events_fail(400, 'invalid_idempotency_key', 'Idempotency-Key must be 1 to 255 visible ASCII characters, or a quoted string of them', $rid);
            return;
        }
        $idem = events_idem_open($key, $body);
        if ($idem === null) {
            header('Retry-After: ' . EVENTS_RETRY_AFTER);
            events_fail(503, 'unavailable', 'event could not be stored, retry later', $rid);
            return;
        }
    }
    try {
        events_handle_valid_key($body, $now, $rid, $idem);
    } finally {
        if ($idem !== null) {
            events_idem_close($idem);
        }
    }
}

// events_handle_valid_key is the intake past the Idempotency-Key check:
// with a key, under its lock, a key seen within the window answers as it
// did the first time (the same 202; 422 for another body) and publishes
// nothing, and an accepted event's key is stored with it.
function events_handle_valid_key(string $body, array $now, ?string $rid, ?array $idem): void
{
    if ($idem !== null) {
        $first = events_idem_lookup($idem, $now);
        if ($first !== null) {
            if (hash_equals($first['fp'], $idem['fp'])) {
                events_respond(202, ['status' => 'accepted', 'event_id' => $first['event_id'], 'received_at' => $first['received_at']]);
            } else {
                events_fail(422, 'idempotency_key_reused', 'Idempotency-Key was already used with a different request body', $rid);
            }
            return;
        }
    }
    $result = events_validate($body, $now);
    if ($result === 'no_campaign_data') {
        // A passing state, never a permanent campaign_not_found.
        header('Retry-After: ' . EVENTS_RETRY_AFTER);
        events_fail(503, 'unavailable', 'campaign data unavailable, retry later', $rid);
        return;
    }
    if (is_string($result)) {
        $messages = [
            'invalid_utf8' => 'request body is not valid UTF-8',
            'not_an_object' => 'request body must be a JSON object',
            'malformed_json' => 'request body is not valid JSON',
        ];
        events_fail(400, $result, $messages[$result], $rid);
        return;
    }
    [$event, $errors] = $result;
    if ($errors !== []) {
        $out = ['status' => 'rejected', 'errors' => $errors];
        if ($rid !== null) {
            $out['request_id'] = $rid;
        }
        events_respond(422, $out);
        return;
    }

    $id = events_uuid4();
    if (!events_append(events_forwarded_json($event, $id, $now))) {
        header('Retry-After: ' . EVENTS_RETRY_AFTER);
        events_fail(503, 'unavailable', 'event could not be stored, retry later', $rid);
        return;
    }
    if ($idem !== null) {
        events_idem_store($idem, $id, events_format_ms($now), $now);
    }
    events_respond(202, ['status' => 'accepted', 'event_id' => $id, 'received_at' => events_format_ms($now)]);
}

// The Idempotency-Key value (IETF httpapi idempotency-key draft): a
// structured-field string ("…", escapes \" and \\ only) or, as many clients
// send, the bare key; 1 to 255 characters of visible ASCII (a quoted one
// may hold spaces). Null when it is neither. Same rule as the Go twin's
// ParseIdempotencyKey.
function events_idempotency_key(string $raw): ?string
{
    $raw = trim($raw, " \t");
    if ($raw === '') {
        return null;
    }
    if ($raw[0] !== '"') {
        if (preg_match('/^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/D', $raw) !== 1) {
            return null;
        }
        return $raw;
    }
    if (preg_match('/^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\\\["\\\\])*)"$/D', $raw, $m) !== 1) {
        return null;
    }
    $key = preg_replace('/\\\\(["\\\\])/', '$1', $m[1]);
    $n = strlen($key);
    return $n >= 1 && $n <= 255 ? $key : null;
}

// Keys live one file each in STRANGLER_IDEMPOTENCY_DIR (default
// <sys_get_temp_dir()>/strangler-idempotency), named by the key's SHA-256,
// for STRANGLER_IDEMPOTENCY_WINDOW seconds (default 86400) after the
// event's received_at. One lock for the directory serializes keyed
// requests, so a concurrent retry waits for the first instead of 409.
function events_idem_open(string $key, string $body): ?array
{
    $dir = getenv('STRANGLER_IDEMPOTENCY_DIR', true);
    if (!is_string($dir) || $dir === '') {
        $dir = sys_get_temp_dir() . '/strangler-idempotency';
    }
    if (!is_dir($dir) && !@mkdir($dir, 0700, true) && !is_dir($dir)) {
        return null;
    }
    $lock = @fopen($dir . '/lock', 'cb');
    if ($lock === false || !flock($lock, LOCK_EX)) {
        return null;
    }
    return ['lock' => $lock, 'path' => $dir . '/' . hash('sha256', $key), 'fp' => hash('sha256', $body)];
}

function events_idem_close(array $idem): void
{
    flock($idem['lock'], LOCK_UN);
    fclose($idem['lock']);
}

function events_idem_window(): int
{
    $w = getenv('STRANGLER_IDEMPOTENCY_WINDOW', true);
    return is_string($w) && ctype_digit($w) && $w !== '0' ? (int)$w : 86400;
}

// The first answer to the key, null when none within the window.
function events_idem_lookup(array $idem, array $now): ?array
{
    $raw = @file_get_contents($idem['path']);
    if ($raw === false) {
        return null;
    }
    $first = json_decode($raw, true);
    if (!is_array($first) || !isset($first['fp'], $first['event_id'], $first['received_at'], $first['at'])) {
        return null;
    }
    if ($now[0] - (int)$first['at'] >= events_idem_window()) {
        return null;
    }
    return $first;
}

// Stores the key's first answer (write, then rename: never half a file).
function events_idem_store(array $idem, string $id, string $receivedAt, array $now): void
{
    $tmp = $idem['path'] . '.tmp';
    $doc = json_encode(['fp' => $idem['fp'], 'event_id' => $id, 'received_at' => $receivedAt, 'at' => $now[0]]);
    if (@file_put_contents($tmp, $doc) === false || !@rename($tmp, $idem['path'])) {
        error_log('events: the Idempotency-Key of ' . $id . ' could not be stored');
    }
}

function events_respond(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body, EVENTS_JSON_FLAGS);
}

function events_fail(int $status, string $code, string $message, ?string $rid): void
{
    $out = ['error' => $code, 'message' => $message];
    if ($rid !== null) {
        $out['request_id'] = $rid;
    }
    events_respond($status, $out);
}

// The front door's X-Request-Id, echoed in error bodies when it matches the
// same pattern as in the campaign routes.
function events_request_id(): ?string
{
    $rid = $_SERVER['HTTP_X_REQUEST_ID'] ?? null;
    if (!is_string($rid) || preg_match('/^[A-Za-z0-9._:+\/=-]{1,128}$/D', $rid) !== 1) {
        return null;
    }
    return $rid;
}

// "application/json" (any case) with no parameter but an optional
// charset=utf-8 (any case, optionally quoted), spaces or tabs around parts.
function events_json_content_type(string $ct): bool
{
    $parts = explode(';', $ct);
    if (strtolower(trim($parts[0], " \t")) !== 'application/json') {
        return false;
    }
    foreach (array_slice($parts, 1) as $p) {
        $p = trim($p, " \t");
        $eq = strpos($p, '=');
        if ($eq === false || strtolower(substr($p, 0, $eq)) !== 'charset') {
            return false;
        }
        $val = substr($p, $eq + 1);
        if (strlen($val) >= 2 && $val[0] === '"' && $val[-1] === '"') {
            $val = substr($val, 1, -1);
        }
        if (strtolower($val) !== 'utf-8') {
            return false;
        }
    }
    return true;
}

// events_now is [unix seconds, nanoseconds]. STRANGLER_FIXED_NOW comes from
// the pool's environment only (local_only), never from FastCGI params a
// client could influence through headers.
function events_now(): array
{
    $fixed = getenv('STRANGLER_FIXED_NOW', true);
    if (is_string($fixed) && $fixed !== '') {
        $t = events_parse_rfc3339($fixed);
        if ($t !== null) {
            return $t;
        }
    }
    $tv = gettimeofday();
    return [$tv['sec'], $tv['usec'] * 1000];
}

// RFC 3339 §5.6 date-time (T/Z in either case, 1..9 fraction digits, no
// leap second, offsets up to ±23:59) as [unix seconds, nanoseconds], or null.
function events_parse_rfc3339(string $s): ?array
{
    $re = '/^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))$/D';
    if (preg_match($re, $s, $m) !== 1) {
        return null;
    }
    [$y, $mo, $d, $h, $mi, $sec] = array_map('intval', array_slice($m, 1, 6));
    if ($mo < 1 || $mo > 12 || $d < 1 || $d > events_days_in($y, $mo) || $h > 23 || $mi > 59 || $sec > 59) {
        return null;
    }
    $nsec = isset($m[7]) && $m[7] !== '' ? (int)str_pad($m[7], 9, '0') : 0;
    $offset = 0;
    if (isset($m[8]) && $m[8] !== '') {
        $oh = (int)$m[9];
        $om = (int)$m[10];
        if ($oh > 23 || $om > 59) {
            return null;
        }
        $offset = ($oh * 60 + $om) * 60 * ($m[8] === '-' ? -1 : 1);
    }
    return [events_days_from_civil($y, $mo, $d) * 86400 + $h * 3600 + $mi * 60 + $sec - $offset, $nsec];
}

function events_days_in(int $y, int $m): int
{
    if ($m === 2) {
        return ($y % 4 === 0 && ($y % 100 !== 0 || $y % 400 === 0)) ? 29 : 28;
    }
    return in_array($m, [4, 6, 9, 11], true) ? 30 : 31;
}

// Days since 1970-01-01 (Howard Hinnant's days_from_civil, integer steps as
// in the Go twin).
function events_days_from_civil(int $y, int $m, int $d): int
{
    if ($m <= 2) {
        $y--;
    }
    $era = intdiv($y, 400);
    if ($y < 0 && $y % 400 !== 0) {
        $era--;
    }
    $yoe = $y - $era * 400;
    $mp = ($m + 9) % 12;
    $doy = intdiv(153 * $mp + 2, 5) + $d - 1;
    $doe = $yoe * 365 + intdiv($yoe, 4) - intdiv($yoe, 100) + $doy;
    return $era * 146097 + $doe - 719468;
}

function events_before(array $a, array $b): bool
{
    return $a[0] < $b[0] || ($a[0] === $b[0] && $a[1] < $b[1]);
}

// "2006-01-02T15:04:05.000Z": UTC, milliseconds truncated.
function events_format_ms(array $t): string
{
    return gmdate('Y-m-d\TH:i:s', $t[0]) . sprintf('.%03dZ', intdiv($t[1], 1000000));
}

function events_uuid4(): string
{
    $b = random_bytes(16);
    $b[6] = chr((ord($b[6]) & 0x0f) | 0x40);
    $b[8] = chr((ord($b[8]) & 0x3f) | 0x80);
    $h = bin2hex($b);
    return substr($h, 0, 8) . '-' . substr($h, 8, 4) . '-' . substr($h, 12, 4) . '-' . substr($h, 16, 4) . '-' . substr($h, 20);
}

// Appends one line under an exclusive lock, so concurrent FPM workers never
// interleave lines. Returns false when the line may not be stored.
function events_append(string $json): bool
{
    $path = getenv('STRANGLER_EVENTS_FILE', true);
    if (!is_string($path) || $path === '') {
        $path = sys_get_temp_dir() . '/strangler-events.jsonl';
    }
    $fh = @fopen($path, 'ab');
    if ($fh === false) {
        return false;
    }
    try {
        if (!flock($fh, LOCK_EX)) {
            return false;
        }
        $line = $json . "\n";
        $ok = fwrite($fh, $line) === strlen($line) && fflush($fh);
        flock($fh, LOCK_UN);
        return $ok;
    } finally {
        fclose($fh);
    }
}

// The campaign with this id from STRANGLER_CAMPAIGNS_FILE, null when there
// is none, false when the file cannot be read or decoded (the Go side's
// hot cache before its first load): then no answer about the campaign is
// given but 503. It reads the same indexed, OPcache-held copy as the
// campaign lookups (campaigns_data), so an event naming a campaign does not
// re-decode 2.5 MB of JSON; the file is only touched when an event names a
// well-formed id.
function events_campaign(string $id): array|null|false
{
    require_once __DIR__ . '/campaigns.php';
    $data = campaigns_data();
    if ($data === null) {
        return false;
    }
    return $data['by_id'][$id] ?? null;
}

// [required, forbidden] for field $f and event type $typ (null: unknown).
function events_presence(string $f, ?string $typ): array
{
    if (in_array($f, ['user_id', 'occurred_at', 'country'], true)) {
        return [true, false];
    }
    if ($typ === null) {
        return [false, false];
    }
    $money = $typ === 'purchase' || $typ === 'refund';
    return match ($f) {
        'currency', 'amount' => [$money, !$money],
        'items' => [$typ === 'purchase', !$money],
        'original_event_id' => [$typ === 'refund', $typ !== 'refund'],
        'email' => [$typ === 'signup', false],
        default => [false, false],
    };
}

function events_add(array &$errs, string $field, string $code): void
{
    $errs[] = ['field' => $field, 'code' => $code, 'message' => EVENTS_MESSAGES[$code]];
}

function events_wrong_type(array &$errs, string $field, string $want): void
{
    $errs[] = ['field' => $field, 'code' => 'wrong_type', 'message' => 'must be ' . $want];
}

// [present, value] of field $f after the presence rules.
function events_slot(array $vars, string $f, ?string $typ, array &$errs): array
{
    [$required, $forbidden] = events_presence($f, $typ);
    if (!array_key_exists($f, $vars)) {
        if ($required) {
            events_add($errs, $f, 'required');
        }
        return [false, null];
    }
    if ($forbidden) {
        events_add($errs, $f, 'not_allowed');
        return [false, null];
    }
    return [true, $vars[$f]];
}

function events_string_field(array $vars, string $f, ?string $typ, array &$errs): ?string
{
    [$present, $v] = events_slot($vars, $f, $typ, $errs);
    if (!$present) {
        return null;
    }
    if (!is_string($v)) {
        events_wrong_type($errs, $f, 'a string');
        return null;
    }
    return $v;
}

// Object members as [name, value] pairs sorted by name in byte order.
// get_object_vars turns numeric names into int keys: cast them back.
function events_members(stdClass $o): array
{
    $out = [];
    foreach (get_object_vars($o) as $k => $v) {
        $out[] = [(string)$k, $v];
    }
    usort($out, fn (array $a, array $b): int => strcmp($a[0], $b[0]));
    return $out;
}

// The significant digits of the shortest round-trip text of $f > 0 and the
// decimal point's position: $f = 0.DIGITS × 10^decpt.
function events_shortest(float $f): array
{
    $s = json_encode($f);
    $exp = 0;
    $e = stripos($s, 'e');
    if ($e !== false) {
        $exp = (int)substr($s, $e + 1);
        $s = substr($s, 0, $e);
    }
    $dot = strpos($s, '.');
    $int = $dot === false ? $s : substr($s, 0, $dot);
    $digits = $dot === false ? $s : $int . substr($s, $dot + 1);
    $decpt = strlen($int) + $exp;
    $trimmed = ltrim($digits, '0');
    $decpt -= strlen($digits) - strlen($trimmed);
    return [rtrim($trimmed, '0'), $decpt];
}

// [milli, problem] for an amount or price: problem is '' (fine),
// 'not_positive', 'too_large' or 'precision' (more fraction digits than
// $minor; $minor < 0 means unknown currency, not checked).
function events_money(int|float $v, int $minor): array
{
    if (is_int($v)) {
        if ($v <= 0) {
            return [0, 'not_positive'];
        }
        if ($v > EVENTS_MAX_MONEY) {
            return [0, 'too_large'];
        }
        return [$v * 1000, ''];
    }
    if ($v <= 0) {
        return [0, 'not_positive'];
    }
    if ($v > EVENTS_MAX_MONEY) {
        return [0, 'too_large'];
    }
    [$digits, $decpt] = events_shortest($v);
    $frac = max(0, strlen($digits) - $decpt);
    if ($minor >= 0 && $frac > $minor) {
        return [0, 'precision'];
    }
    if ($frac > 3) {
        return [0, ''];
    }
    $m = (int)$digits;
    for ($i = strlen($digits) - $decpt; $i < 3; $i++) {
        $m *= 10;
    }
    return [$m, ''];
}

// Minor units as a decimal string with exactly $minor fraction digits.
function events_format_minor(int $v, int $minor): string
{
    if ($minor === 0) {
        return (string)$v;
    }
    $scale = 10 ** $minor;
    return intdiv($v, $scale) . '.' . str_pad((string)($v % $scale), $minor, '0', STR_PAD_LEFT);
}

// The parse error code (400), or [event, violations in contract order].
function events_validate(string $body, array $now): string|array
{
    if (preg_match('//u', $body) !== 1) {
        return 'invalid_utf8';
    }
    $doc = json_decode($body, false, 512);
    if (json_last_error() !== JSON_ERROR_NONE) {
        return 'malformed_json';
    }
    if (!($doc instanceof stdClass)) {
        return 'not_an_object';
    }
    $vars = get_object_vars($doc);
    $errs = [];
    $noCampaigns = false;
    $ev = [
        'type' => null, 'user_id' => null, 'session_id' => null, 'occurred_at' => null, 'country' => null,
        'currency' => null, 'minor' => -1, 'amount' => null, 'items' => null, 'original_event_id' => null,
        'campaign_id' => null, 'advertiser_id' => null, 'email_sha256' => null, 'metadata' => [],
    ];

    // type
    $typ = null;
    if (!array_key_exists('type', $vars)) {
        events_add($errs, 'type', 'required');
    } elseif (!is_string($vars['type'])) {
        events_wrong_type($errs, 'type', 'a string');
    } elseif (in_array($vars['type'], EVENTS_TYPES, true)) {
        $typ = $vars['type'];
    } else {
        events_add($errs, 'type', 'type_unknown');
    }
    $ev['type'] = $typ;

    $s = events_string_field($vars, 'user_id', $typ, $errs);
    if ($s !== null) {
        if (preg_match('/^u_[a-z0-9]{8,32}$/D', $s) === 1) {
            $ev['user_id'] = $s;
        } else {
            events_add($errs, 'user_id', 'user_id_format');
        }
    }
    $s = events_string_field($vars, 'session_id', $typ, $errs);
    if ($s !== null) {
        if (preg_match('/^s_[A-Za-z0-9]{8,64}$/D', $s) === 1) {
            $ev['session_id'] = $s;
        } else {
            events_add($errs, 'session_id', 'session_id_format');
        }
    }

    $occurred = null;
    $s = events_string_field($vars, 'occurred_at', $typ, $errs);
    if ($s !== null) {
        $t = events_parse_rfc3339($s);
        if ($t === null) {
            events_add($errs, 'occurred_at', 'occurred_at_format');
        } elseif (events_before($t, [$now[0] - EVENTS_MAX_AGE, $now[1]])) {
            events_add($errs, 'occurred_at', 'occurred_at_too_old');
        } elseif (events_before([$now[0] + EVENTS_MAX_AHEAD, $now[1]], $t)) {
            events_add($errs, 'occurred_at', 'occurred_at_in_future');
        } else {
            $occurred = $t;
        }
    }
    $ev['occurred_at'] = $occurred;

    $s = events_string_field($vars, 'country', $typ, $errs);
    if ($s !== null) {
        $cc = strtoupper($s);
        if (in_array($cc, EVENTS_COUNTRIES, true)) {
            $ev['country'] = $cc;
        } else {
            events_add($errs, 'country', 'country_unknown');
        }
    }

    $minor = -1;
    $s = events_string_field($vars, 'currency', $typ, $errs);
    if ($s !== null) {
        $cur = strtoupper($s);
        if (array_key_exists($cur, EVENTS_CURRENCIES)) {
            $ev['currency'] = $cur;
            $minor = EVENTS_CURRENCIES[$cur];
        } else {
            events_add($errs, 'currency', 'currency_unknown');
        }
    }
    $ev['minor'] = $minor;

    $amount = null; // milli, when valid
    [$present, $v] = events_slot($vars, 'amount', $typ, $errs);
    if ($present) {
        if (!is_int($v) && !is_float($v)) {
            events_wrong_type($errs, 'amount', 'a number');
        } else {
            [$m, $problem] = events_money($v, $minor);
            if ($problem === '') {
                $amount = $m;
                if ($minor >= 0) {
                    $ev['amount'] = intdiv($m, 10 ** (3 - $minor));
                }
            } else {
                events_add($errs, 'amount', 'amount_' . $problem);
            }
        }
    }

    [$present, $v] = events_slot($vars, 'items', $typ, $errs);
    if ($present) {
        $ev['items'] = events_check_items($v, $typ, $minor, $amount, $errs);
    }

    $s = events_string_field($vars, 'original_event_id', $typ, $errs);
    if ($s !== null) {
        if (preg_match('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/D', $s) === 1) {
            $ev['original_event_id'] = $s;
        } else {
            events_add($errs, 'original_event_id', 'original_event_id_format');
        }
    }

    $s = events_string_field($vars, 'campaign_id', $typ, $errs);
    if ($s !== null) {
        if (preg_match('/^cmp_[0-9]{6}$/D', $s) !== 1) {
            events_add($errs, 'campaign_id', 'campaign_id_format');
        } elseif (($c = events_campaign($s)) === false) {
            $noCampaigns = true;
        } elseif ($c === null) {
            events_add($errs, 'campaign_id', 'campaign_not_found');
        } else {
            $valid = true;
            if ($occurred !== null) {
                $start = events_parse_rfc3339((string)($c['starts_at'] ?? ''));
                $end = events_parse_rfc3339((string)($c['ends_at'] ?? ''));
                $active = ($c['status'] ?? null) === 'active' && $start !== null && $end !== null
                    && !events_before($occurred, $start) && events_before($occurred, $end);
                if (!$active) {
                    events_add($errs, 'campaign_id', 'campaign_inactive');
                    $valid = false;
                }
            }
            if ($ev['country'] !== null && !in_array($ev['country'], (array)($c['countries'] ?? []), true)) {
                events_add($errs, 'campaign_id', 'campaign_country');
                $valid = false;
            }
            if ($valid) {
                $ev['campaign_id'] = $c['id'];
                $ev['advertiser_id'] = (string)($c['advertiser_id'] ?? '');
            }
        }
    }

    $s = events_string_field($vars, 'email', $typ, $errs);
    if ($s !== null) {
        $e = strtolower(trim($s));
        if (strlen($e) <= EVENTS_MAX_EMAIL_LEN && preg_match('/^[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+$/D', $e) === 1) {
            $ev['email_sha256'] = hash('sha256', $e);
        } else {
            events_add($errs, 'email', 'email_format');
        }
    }

    if (array_key_exists('metadata', $vars)) {
        $ev['metadata'] = events_check_metadata($vars['metadata'], $errs);
    }

    foreach (EVENTS_SERVER_FIELDS as $f) {
        if (array_key_exists($f, $vars)) {
            events_add($errs, $f, 'server_assigned');
        }
    }
    $known = array_merge(EVENTS_FIELDS, EVENTS_SERVER_FIELDS);
    foreach (events_members($doc) as [$name]) {
        if (!in_array($name, $known, true)) {
            events_add($errs, $name, 'unknown_field');
        }
    }
    if ($noCampaigns) {
        return 'no_campaign_data';
    }
    return [$ev, $errs];
}

// Items as [sku, qty, price in minor units] lists, or null when any is invalid.
function events_check_items(mixed $v, ?string $typ, int $minor, ?int $amount, array &$errs): ?array
{
    if (!is_array($v)) {
        events_wrong_type($errs, 'items', 'an array');
        return null;
    }
    if (count($v) < 1 || count($v) > EVENTS_MAX_ITEMS) {
        events_add($errs, 'items', 'items_count');
        return null;
    }
    $items = [];
    $allOK = true;
    $sum = 0;
    foreach ($v as $idx => $item) {
        $path = "items[$idx]";
        if (!($item instanceof stdClass)) {
            events_wrong_type($errs, $path, 'an object');
            $allOK = false;
            continue;
        }
        $m = get_object_vars($item);
        $ok = true;
        $it = ['sku' => null, 'qty' => null, 'price' => null];
        if (!array_key_exists('sku', $m)) {
            events_add($errs, "$path.sku", 'required');
            $ok = false;
        } elseif (!is_string($m['sku'])) {
            events_wrong_type($errs, "$path.sku", 'a string');
            $ok = false;
        } elseif (preg_match('/^[A-Z0-9][A-Z0-9-]{2,31}$/D', $m['sku']) === 1) {
            $it['sku'] = $m['sku'];
        } else {
            events_add($errs, "$path.sku", 'item_sku_format');
            $ok = false;
        }
        if (!array_key_exists('qty', $m)) {
            events_add($errs, "$path.qty", 'required');
            $ok = false;
        } elseif (!is_int($m['qty'])) {
            events_wrong_type($errs, "$path.qty", 'an integer');
            $ok = false;
        } elseif ($m['qty'] < 1 || $m['qty'] > EVENTS_MAX_QTY) {
            events_add($errs, "$path.qty", 'item_qty_range');
            $ok = false;
        } else {
            $it['qty'] = $m['qty'];
        }
        $milli = 0;
        if (!array_key_exists('price', $m)) {
            events_add($errs, "$path.price", 'required');
            $ok = false;
        } elseif (!is_int($m['price']) && !is_float($m['price'])) {
            events_wrong_type($errs, "$path.price", 'a number');
            $ok = false;
        } else {
            [$milli, $problem] = events_money($m['price'], $minor);
            if ($problem !== '') {
                events_add($errs, "$path.price", 'price_' . $problem);
                $ok = false;
            } elseif ($minor >= 0) {
                $it['price'] = intdiv($milli, 10 ** (3 - $minor));
            }
        }
        foreach (events_members($item) as [$name]) {
            if (!in_array($name, ['sku', 'qty', 'price'], true)) {
                events_add($errs, "$path.$name", 'unknown_field');
                $ok = false;
            }
        }
        if ($ok) {
            $items[] = $it;
            $sum += $it['qty'] * $milli;
        }
        $allOK = $allOK && $ok;
    }
    if (!$allOK) {
        return null;
    }
    if ($typ === 'purchase' && $amount !== null && $minor >= 0 && abs($sum - $amount) > EVENTS_SUM_TOLERANCE_MILLI) {
        events_add($errs, 'items', 'items_sum_mismatch');
    }
    return $items;
}

// Metadata as [key => value] sorted by key, or [] when any entry is invalid.
function events_check_metadata(mixed $v, array &$errs): array
{
    if (!($v instanceof stdClass)) {
        events_wrong_type($errs, 'metadata', 'an object');
        return [];
    }
    $members = events_members($v);
    if (count($members) > EVENTS_MAX_META_KEYS) {
        events_add($errs, 'metadata', 'metadata_too_many_keys');
        return [];
    }
    $meta = [];
    $allOK = true;
    foreach ($members as [$k, $val]) {
        $ok = true;
        if (preg_match('/^[a-z][a-z0-9_]{0,39}$/D', $k) !== 1) {
            events_add($errs, "metadata.$k", 'metadata_key_format');
            $ok = false;
        }
        if (!is_string($val)) {
            events_add($errs, "metadata.$k", 'metadata_value_type');
            $ok = false;
        } elseif (strlen($val) > EVENTS_MAX_META_VALUE_LEN && preg_match_all('/./su', $val) > EVENTS_MAX_META_VALUE_LEN) {
            events_add($errs, "metadata.$k", 'metadata_value_too_long');
            $ok = false;
        }
        if ($ok && $allOK) {
            $meta[$k] = $val;
        }
        $allOK = $allOK && $ok;
    }
    return $allOK ? $meta : [];
}

// The forwarded event: every key, in this order (CONTRACT.md).
function events_forwarded_json(array $ev, string $id, array $now): string
{
    $minor = $ev['minor'];
    $items = null;
    if ($ev['items'] !== null) {
        $items = [];
        foreach ($ev['items'] as $it) {
            $items[] = ['sku' => $it['sku'], 'qty' => $it['qty'], 'price' => events_format_minor($it['price'] ?? 0, max($minor, 0))];
        }
    }
    return json_encode([
        'schema_version' => EVENTS_SCHEMA_VERSION,
        'event_id' => $id,
        'type' => $ev['type'],
        'occurred_at' => events_format_ms($ev['occurred_at']),
        'received_at' => events_format_ms($now),
        'user_id' => $ev['user_id'],
        'session_id' => $ev['session_id'],
        'country' => $ev['country'],
        'currency' => $ev['currency'],
        'amount' => $ev['currency'] === null ? null : events_format_minor($ev['amount'], $minor),
        'items' => $items,
        'original_event_id' => $ev['original_event_id'],
        'campaign_id' => $ev['campaign_id'],
        'advertiser_id' => $ev['advertiser_id'],
        'email_sha256' => $ev['email_sha256'],
        // (object): an empty array would encode as [] and numeric keys as a list.
        'metadata' => (object)$ev['metadata'],
    ], EVENTS_JSON_FLAGS);
}
