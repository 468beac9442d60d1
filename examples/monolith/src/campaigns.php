<?php
// Campaign lookups of the sample monolith: GET /api/v1/campaigns/{id} and
// GET /api/v1/campaigns. Their Go twins live in ported/campaigns; both follow
// examples/monolith/CONTRACT.md ("Campaign lookups") to the byte.
//
// The data is examples/monolith/data/campaigns.json (or the file named by
// STRANGLER_CAMPAIGNS_FILE). Decoding 2.5 MB of JSON on every request would
// dominate the response time, so the decoded and indexed data is written once
// per file version as a PHP file returning an array: OPcache keeps that array
// in shared memory and `include` costs next to nothing afterwards.

declare(strict_types=1);

const CAMPAIGNS_DEFAULT_LIMIT = 20;
const CAMPAIGNS_MAX_LIMIT = 100;
const CAMPAIGNS_JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE;

// campaigns_now is "now" in Unix seconds. STRANGLER_FIXED_NOW (RFC 3339) is
// set per FPM pool by the launcher, for tests only. getenv(..., true) reads
// the worker's environment, never FastCGI params a client could influence.
function campaigns_now(): int
{
    $fixed = getenv('STRANGLER_FIXED_NOW', true);
    if (is_string($fixed) && $fixed !== '') {
        $t = DateTimeImmutable::createFromFormat(DATE_RFC3339, $fixed)
            ?: DateTimeImmutable::createFromFormat(DATE_RFC3339_EXTENDED, $fixed);
        if ($t !== false) {
            return $t->getTimestamp();
        }
    }
    return time();
}

function campaigns_file(): string
{
    $f = getenv('STRANGLER_CAMPAIGNS_FILE', true);
    if (is_string($f) && $f !== '') {
        return $f;
    }
    return __DIR__ . '/../data/campaigns.json';
}

/**
 * The indexed data: ['by_id' => [id => row], 'all' => [ids sorted],
 * 'by_country' => [cc => [ids sorted]]]. A row is the campaign as in the file
 * plus 'starts_ts' and 'ends_ts' (Unix seconds). Null when unreadable.
 */
function campaigns_data(): ?array
{
    $file = campaigns_file();
    clearstatcache(true, $file);
    $st = @stat($file);
    if ($st === false) {
        return null;
    }
    // One compiled file per version of the source: a new version gets a new
    // name, so OPcache never serves a stale array.
    $key = sha1(implode('|', [realpath($file), $st['size'], $st['mtime'], $st['ino'], 'v1']));
    $cache = sys_get_temp_dir() . "/campaigns-$key.php";
    if (is_file($cache)) {
        $data = include $cache;
        if (is_array($data)) {
            return $data;
        }
    }
    $data = campaigns_build($file);
    if ($data === null) {
        return null;
    }
    $tmp = $cache . '.' . getmypid() . '.tmp';
    if (@file_put_contents($tmp, '<?php return ' . var_export($data, true) . ";\n") !== false) {
        // OPcache skips files modified in the last opcache.file_update_protection
        // seconds (2 by default); date the file back so it is cached at once.
        @touch($tmp, time() - 60);
        if (!@rename($tmp, $cache)) {
            @unlink($tmp);
        }
    }
    return $data;
}

function campaigns_build(string $file): ?array
{
    $json = @file_get_contents($file);
    if ($json === false) {
        return null;
    }
    $doc = json_decode($json, true, 16);
    if (!is_array($doc) || !isset($doc['campaigns']) || !is_array($doc['campaigns'])) {
        return null;
    }
    $byId = [];
    $all = [];
    foreach ($doc['campaigns'] as $c) {
        $c['starts_ts'] = (new DateTimeImmutable($c['starts_at']))->getTimestamp();
        $c['ends_ts'] = (new DateTimeImmutable($c['ends_at']))->getTimestamp();
        $byId[$c['id']] = $c;
        $all[] = $c['id'];
    }
    // Byte order, as Go compares strings.
    sort($all, SORT_STRING);
    $byCountry = [];
    foreach ($all as $id) {
        foreach ($byId[$id]['countries'] as $cc) {
            $byCountry[$cc][] = $id;
        }
    }
    return ['by_id' => $byId, 'all' => $all, 'by_country' => $byCountry];
}

function campaigns_active(array $c, int $now): bool
{
    return $c['status'] === 'active' && $c['starts_ts'] <= $now && $now < $c['ends_ts'];
}

// campaigns_public is the representation clients see, keys in contract order.
function campaigns_public(array $c, int $now): array
{
    return [
        'id' => $c['id'],
        'advertiser_id' => $c['advertiser_id'],
        'name' => $c['name'],
        'status' => $c['status'],
        'countries' => $c['countries'],
        'starts_at' => gmdate('Y-m-d\TH:i:s\Z', $c['starts_ts']),
        'ends_at' => gmdate('Y-m-d\TH:i:s\Z', $c['ends_ts']),
        'budget' => [
            'amount_minor' => $c['budget']['amount_minor'],
            'currency' => $c['budget']['currency'],
        ],
        'active' => campaigns_active($c, $now),
    ];
}

function campaigns_send(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body, CAMPAIGNS_JSON_FLAGS);
}

// campaigns_error echoes X-Request-Id only when it needs no escaping, the
// same rule as the Go side.
function campaigns_error(int $status, string $code, string $message, ?string $field = null): void
{
    $body = ['error' => $code, 'message' => $message];
    if ($field !== null) {
        $body['field'] = $field;
    }
    $rid = $_SERVER['HTTP_X_REQUEST_ID'] ?? '';
    if (is_string($rid) && preg_match('#^[A-Za-z0-9._:+/=-]{1,128}\z#', $rid) === 1) {
        $body['request_id'] = $rid;
    }
    campaigns_send($status, $body);
}

// The data file is read again by the next request, so a client may come
// back soon; Retry-After as on the Go side (campaigns.DefaultRetryAfter).
function campaigns_unavailable(): void
{
    header('Retry-After: 5');
    campaigns_error(503, 'unavailable', 'campaign data unavailable');
}

function campaigns_get(string $id): void
{
    $data = campaigns_data();
    if ($data === null) {
        campaigns_unavailable();
        return;
    }
    $c = $data['by_id'][$id] ?? null;
    if ($c === null) {
        campaigns_error(404, 'not_found', 'campaign not found');
        return;
    }
    campaigns_send(200, campaigns_public($c, campaigns_now()));
}

/**
 * Parses the raw query by the contract's rules (not $_GET, which keeps the
 * last of repeated names and rewrites some names). Returns
 * [country|null, active|null, limit, after|null] or [null, field, message].
 */
function campaigns_parse_query(string $raw): array
{
    $country = null;
    $active = null;
    $limit = CAMPAIGNS_DEFAULT_LIMIT;
    $after = null;
    $seen = [];
    foreach (explode('&', $raw) as $piece) {
        if ($piece === '') {
            continue;
        }
        $kv = explode('=', $piece, 2);
        $name = urldecode($kv[0]);
        $value = urldecode($kv[1] ?? '');
        if (!in_array($name, ['country', 'active', 'limit', 'cursor'], true)) {
            $field = preg_match('#^[A-Za-z0-9_.-]{1,64}\z#', $name) === 1 ? $name : 'query';
            return [null, $field, 'unknown parameter'];
        }
        if (isset($seen[$name])) {
            return [null, $name, 'parameter given more than once'];
        }
        $seen[$name] = true;
        switch ($name) {
            case 'country':
                $v = strtoupper($value);
                if (preg_match('#^[A-Z]{2}\z#', $v) !== 1) {
                    return [null, 'country', 'country must be an ISO 3166-1 alpha-2 code'];
                }
                $country = $v;
                break;
            case 'active':
                if ($value !== 'true' && $value !== 'false') {
                    return [null, 'active', 'active must be true or false'];
                }
                $active = $value === 'true';
                break;
            case 'limit':
                if (preg_match('#^[1-9][0-9]{0,2}\z#', $value) !== 1 || (int) $value > CAMPAIGNS_MAX_LIMIT) {
                    return [null, 'limit', 'limit must be an integer between 1 and 100'];
                }
                $limit = (int) $value;
                break;
            case 'cursor':
                $after = campaigns_decode_cursor($value);
                if ($after === null) {
                    return [null, 'cursor', 'cursor is not valid'];
                }
                break;
        }
    }
    return [$country, $active, $limit, $after];
}

function campaigns_encode_cursor(string $id): string
{
    return rtrim(strtr(base64_encode($id), '+/', '-_'), '=');
}

// A cursor is unpadded base64url that re-encodes to itself and holds 1..64
// printable ASCII bytes other than '/'.
function campaigns_decode_cursor(string $c): ?string
{
    if (preg_match('#^[A-Za-z0-9_-]{1,88}\z#', $c) !== 1) {
        return null;
    }
    $raw = base64_decode(strtr($c, '-_', '+/'), true);
    if ($raw === false || $raw === '' || strlen($raw) > 64 || campaigns_encode_cursor($raw) !== $c) {
        return null;
    }
    if (preg_match('#^[\x21-\x2e\x30-\x7e]+\z#', $raw) !== 1) {
        return null;
    }
    return $raw;
}

function campaigns_list(): void
{
    $uri = $_SERVER['REQUEST_URI'] ?? '';
    $parsed = campaigns_parse_query(explode('?', $uri, 2)[1] ?? '');
    if (count($parsed) === 3) {
        campaigns_error(400, 'bad_request', $parsed[2], $parsed[1]);
        return;
    }
    [$country, $active, $limit, $after] = $parsed;
    $data = campaigns_data();
    if ($data === null) {
        campaigns_unavailable();
        return;
    }
    $ids = $country === null ? $data['all'] : ($data['by_country'][$country] ?? []);
    $start = 0;
    if ($after !== null) {
        // First id greater than the cursor, by binary search.
        $lo = 0;
        $hi = count($ids);
        while ($lo < $hi) {
            $mid = intdiv($lo + $hi, 2);
            if (strcmp($ids[$mid], $after) > 0) {
                $hi = $mid;
            } else {
                $lo = $mid + 1;
            }
        }
        $start = $lo;
    }
    $now = campaigns_now();
    $page = [];
    $last = null;
    $more = false;
    for ($i = $start, $n = count($ids); $i < $n; $i++) {
        $c = $data['by_id'][$ids[$i]];
        if ($active !== null && campaigns_active($c, $now) !== $active) {
            continue;
        }
        if (count($page) === $limit) {
            $more = true;
            break;
        }
        $page[] = campaigns_public($c, $now);
        $last = $c['id'];
    }
    campaigns_send(200, [
        'data' => $page,
        'next_cursor' => $more ? campaigns_encode_cursor($last) : null,
    ]);
}
