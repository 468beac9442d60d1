<?php
// Legacy-only routes of the sample monolith, plus /api/v1/ping (whose Go twin
// answers the same body with "implementation":"go").
//
// They exist to exercise the proxy's passthrough: sessions and Set-Cookie,
// redirects, big uploads and downloads in bounded memory, arbitrary status
// codes, slow answers, and an echo of exactly what PHP received.

declare(strict_types=1);

// legacy_now is the time this app uses. The launcher sets STRANGLER_FIXED_NOW
// per FPM pool (env[...] in php-fpm.conf) so tests get a fixed clock.
// getenv(..., true) reads only the worker's real environment: without
// local_only, PHP-FPM would first look at the FastCGI params, which a client
// can partly control through request headers.
function legacy_now(): DateTimeImmutable
{
    $fixed = getenv('STRANGLER_FIXED_NOW', true);
    if (is_string($fixed) && $fixed !== '') {
        $t = DateTimeImmutable::createFromFormat(DATE_RFC3339, $fixed)
            ?: DateTimeImmutable::createFromFormat(DATE_RFC3339_EXTENDED, $fixed);
        if ($t !== false) {
            return $t;
        }
    }
    return new DateTimeImmutable('now', new DateTimeZone('UTC'));
}

function legacy_json(int $status, mixed $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
}

function legacy_html(int $status, string $title, string $body): void
{
    http_response_code($status);
    header('Content-Type: text/html; charset=utf-8');
    $t = htmlspecialchars($title);
    echo "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>$t</title>"
        . "<link rel=\"stylesheet\" href=\"/static/app.css\"></head>\n<body>\n<h1>$t</h1>\n$body\n</body></html>\n";
}

function legacy_home(): void
{
    legacy_html(200, 'Sample monolith', <<<HTML
<p>A plain PHP application standing in for the legacy monolith behind Strangler.</p>
<ul>
  <li><a href="/login">Log in</a> · <a href="/account">Account</a></li>
  <li><a href="/headers">What PHP received</a></li>
  <li><a href="/download/1">Download 1 MiB</a></li>
  <li><a href="/api/v1/ping">/api/v1/ping</a> · <a href="/api/v1/campaigns/cmp_000042">a campaign</a></li>
  <li><a href="/static/hello.txt">a static file</a></li>
</ul>
HTML);
}

// legacy_healthz lets the launcher know that Nginx reaches PHP-FPM, not only
// that Nginx listens.
function legacy_healthz(): void
{
    header('Content-Type: text/plain');
    echo "ok\n";
}

function legacy_login_form(): void
{
    legacy_html(200, 'Log in', <<<HTML
<form method="post" action="/login">
  <label>User <input name="user"></label>
  <label>Password <input name="password" type="password"></label>
  <button>Log in</button>
</form>
HTML);
}

// Any non-empty user with the password "secret" gets a session. The extra
// cookie makes the answer carry two Set-Cookie headers, which a proxy must not
// fold into one (RFC 6265 §3).
function legacy_login(): void
{
    $user = trim((string)($_POST['user'] ?? ''));
    $password = (string)($_POST['password'] ?? '');
    if ($user === '' || $password !== 'secret') {
        legacy_html(401, 'Login failed', '<p>Wrong user or password. <a href="/login">Try again</a>.</p>');
        return;
    }
    session_start();
    // A fresh id at privilege change prevents session fixation.
    session_regenerate_id(true);
    $_SESSION['user'] = $user;
    setcookie('last_user', $user, ['path' => '/', 'samesite' => 'Lax']);
    http_response_code(302);
    header('Location: /account');
}

function legacy_account(): void
{
    // Only resume a session the client already has: starting one here would
    // hand a session cookie to every anonymous visitor.
    $sent = $_COOKIE[session_name()] ?? null;
    if (is_string($sent)) {
        session_start();
        if (session_id() !== $sent) {
            // use_strict_mode refused an id this server never issued (forged,
            // expired, malformed) and made a fresh, empty session: hand it to
            // no one and keep no file or key for it. A read-only page must
            // not mint sessions (its Go twin, ported/account, never does).
            session_destroy();
            header_remove('Set-Cookie');
        } else {
            // Read only: no write, no lifetime extension (session_abort, not
            // session_write_close), as read_and_close would.
            session_abort();
        }
    }
    $user = $_SESSION['user'] ?? null;
    if (!is_string($user)) {
        http_response_code(302);
        header('Location: /login');
        return;
    }
    legacy_html(200, 'Account', '<p>Logged in as <span id="user">' . htmlspecialchars($user) . '</span>.</p>');
}

// legacy_session_hold keeps the client's session open, and with it PHP's lock
// on it (flock for files; phpredis's <key>_LOCK with
// redis.session.locking_enabled), so ported/session's tests can check the Go
// side against a real PHP-FPM request holding it. It streams "open
// by=<$_SESSION['by']>" as soon as session_start returns, keeps the session
// open until POST /session/release?hold=<hold> (or ?ms=, at most 60 s), then
// sets $_SESSION['by'] = 'php', closes the session and says "closed". Like
// /account it only resumes a session the client has.
function legacy_session_hold(): void
{
    $sent = $_COOKIE[session_name()] ?? null;
    $hold = legacy_hold_file();
    $ms = max(0, min(60000, (int)($_GET['ms'] ?? 0)));
    if (!is_string($sent) || $hold === false) {
        legacy_json(400, ['error' => 'bad_request', 'message' => 'send the session cookie and a hold=[a-z0-9]{1,32}']);
        return;
    }
    session_start();
    if (session_id() !== $sent) {
        session_destroy();
        header_remove('Set-Cookie');
        http_response_code(302);
        header('Location: /login');
        return;
    }
    header('Content-Type: text/plain');
    // Past Nginx at once (as /download does), so the client knows PHP holds
    // the session before it is released.
    header('X-Accel-Buffering: no');
    // The hold lasts while its file exists: POST /session/release removes it.
    file_put_contents($hold, '');
    $by = $_SESSION['by'] ?? '';
    echo 'open by=' . (is_string($by) ? $by : '?') . "\n";
    flush();
    $until = hrtime(true) + $ms * 1000000;
    while (hrtime(true) < $until && file_exists($hold)) {
        usleep(2000);
        clearstatcache(true, $hold);
    }
    @unlink($hold);
    $_SESSION['by'] = 'php';
    session_write_close();
    echo "closed\n";
}

// legacy_session_release ends the /session/hold of the same hold name: 204,
// or 404 when no such hold is open. It touches no session (the held one is
// locked) and creates nothing.
function legacy_session_release(): void
{
    $hold = legacy_hold_file();
    if ($hold === false) {
        legacy_json(400, ['error' => 'bad_request', 'message' => 'hold=[a-z0-9]{1,32}']);
        return;
    }
    http_response_code(@unlink($hold) ? 204 : 404);
}

function legacy_hold_file(): string|false
{
    $name = (string)($_GET['hold'] ?? '');
    if (preg_match('/^[a-z0-9]{1,32}$/', $name) !== 1) {
        return false;
    }
    return sys_get_temp_dir() . '/session-hold-' . $name;
}

// legacy_upload hashes the uploaded file where PHP spooled it (upload_tmp_dir),
// so memory stays flat whatever the size; the pool allows bodies up to 2 GiB.
function legacy_upload(): void
{
    $f = $_FILES['file'] ?? null;
    if (!is_array($f) || is_array($f['error'])) {
        $tooBig = (int)($_SERVER['CONTENT_LENGTH'] ?? 0) > 0 && $_POST === [] && $_FILES === [];
        legacy_json($tooBig ? 413 : 400, ['error' => $tooBig ? 'too_large' : 'no_file', 'message' => 'send one multipart field named "file"']);
        return;
    }
    if ($f['error'] !== UPLOAD_ERR_OK) {
        $status = in_array($f['error'], [UPLOAD_ERR_INI_SIZE, UPLOAD_ERR_FORM_SIZE], true) ? 413 : 400;
        legacy_json($status, ['error' => 'upload_error', 'code' => $f['error']]);
        return;
    }
    legacy_json(200, ['size' => filesize($f['tmp_name']), 'sha256' => hash_file('sha256', $f['tmp_name'])]);
}

// Download byte pattern, so clients can check what they got without storing it:
// one 64 KiB block is the raw SHA-256 digests of "strangler-download:0",
// "strangler-download:1", ... "strangler-download:2047" concatenated
// (2048 × 32 bytes); the body of /download/{mb} is that block repeated
// mb × 16 times, exactly mb MiB.
const DOWNLOAD_BLOCK_DIGESTS = 2048;
const DOWNLOAD_MAX_MB = 2048;

function legacy_download_block(): string
{
    $block = '';
    for ($i = 0; $i < DOWNLOAD_BLOCK_DIGESTS; $i++) {
        $block .= hash('sha256', 'strangler-download:' . $i, true);
    }
    return $block;
}

function legacy_download(string $mb): void
{
    $n = (int)$mb;
    if ($n < 1 || $n > DOWNLOAD_MAX_MB) {
        legacy_json(400, ['error' => 'bad_size', 'message' => 'mb must be 1..' . DOWNLOAD_MAX_MB]);
        return;
    }
    // A slow reader must not hit the execution limit mid-body.
    set_time_limit(0);
    header('Content-Type: application/octet-stream');
    header('Content-Length: ' . ($n * 1048576));
    // Nginx would otherwise spool the body to its temp dir before sending it;
    // with this header it streams as PHP writes (Nginx strips the header).
    header('X-Accel-Buffering: no');
    while (ob_get_level() > 0) {
        ob_end_flush();
    }
    $block = legacy_download_block();
    for ($i = 0; $i < $n * 16; $i++) {
        echo $block;
        flush();
        if (connection_aborted()) {
            return;
        }
    }
}

// legacy_headers echoes what PHP received, for the proxy's fidelity tests.
//
// What reaches $_SERVER, observed with Nginx 1.22.1 + PHP-FPM 8.2 over
// FastCGI (pinned by TestHeadersDuplicates in internal/monolith):
//   - Nginx sends one HTTP_* param per header line, repeated lines included
//     (1.22 does not join them; 1.23+ does). PHP-FPM keeps one entry per
//     name with the value of the LAST line: "X-Dup: one" + "X-Dup: two"
//     gives HTTP_X_DUP = "two".
//   - Cookie is no exception: two Cookie lines give HTTP_COOKIE (and
//     $_COOKIE) from the last line only. A proxy that folds them into one
//     "a=1; b=2" line changes what PHP sees.
//   - HTTP_* entries come in REVERSE order of the header lines, each name at
//     the place of its first line (PHP-FPM prepends params to its list).
//   - Names are upper-cased with '-' → '_'; Nginx drops header names that
//     contain '_' (underscores_in_headers off); an empty value stays "".
//   - "Proxy:" never arrives (httpoxy guard in nginx.conf.tmpl).
function legacy_headers(): void
{
    $headers = [];
    foreach ($_SERVER as $k => $v) {
        if (str_starts_with((string)$k, 'HTTP_')) {
            // A list of pairs, not an object: JSON object order does not
            // survive decoding in most languages, and the order is the point.
            $headers[] = ['name' => $k, 'value' => $v];
        }
    }
    $body = file_get_contents('php://input');
    legacy_json(200, [
        'method' => $_SERVER['REQUEST_METHOD'] ?? '',
        'request_uri' => $_SERVER['REQUEST_URI'] ?? '',
        'query_string' => $_SERVER['QUERY_STRING'] ?? '',
        'server_protocol' => $_SERVER['SERVER_PROTOCOL'] ?? '',
        'remote_addr' => $_SERVER['REMOTE_ADDR'] ?? '',
        'https' => $_SERVER['HTTPS'] ?? null,
        'request_scheme' => $_SERVER['REQUEST_SCHEME'] ?? null,
        'http_host' => $_SERVER['HTTP_HOST'] ?? null,
        'content_type' => $_SERVER['CONTENT_TYPE'] ?? null,
        'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
        'headers' => $headers,
        'cookie' => $_SERVER['HTTP_COOKIE'] ?? null,
        'cookies' => (object)$_COOKIE,
        // php://input is empty for multipart/form-data (PHP consumed it).
        'body_length' => strlen($body),
        'body_sha256' => hash('sha256', $body),
    ]);
}

function legacy_slow(): void
{
    $ms = max(0, min(60000, (int)($_GET['ms'] ?? 0)));
    usleep($ms * 1000);
    legacy_json(200, ['slept_ms' => $ms]);
}

function legacy_status(string $code): void
{
    $c = (int)$code;
    if ($c < 200 || $c > 599) {
        // 1xx are interim responses: PHP cannot send them as a final status.
        legacy_json(400, ['error' => 'bad_status', 'message' => 'status must be 200..599']);
        return;
    }
    http_response_code($c);
    header('Content-Type: text/plain');
    // 204 and 304 must not carry a body (RFC 9110 §15.3.5, §15.4.5).
    if ($c !== 204 && $c !== 304) {
        echo "status $c\n";
    }
}

function legacy_redirect(): void
{
    $to = (string)($_GET['to'] ?? '/');
    // Local paths only: "//host" or "/\host" would make this an open redirect.
    if (!str_starts_with($to, '/') || str_starts_with($to, '//') || str_starts_with($to, '/\\')) {
        $to = '/';
    }
    http_response_code(302);
    header('Location: ' . $to);
    header('Content-Type: text/plain');
    echo "redirect to $to\n";
}

function legacy_debug_now(): void
{
    legacy_json(200, ['now' => legacy_now()->format(DATE_RFC3339)]);
}

// The body must stay byte-identical to the Go twin's, apart from the value of
// "implementation", so shadow comparisons have one known difference.
function legacy_ping(): void
{
    http_response_code(200);
    header('Content-Type: application/json');
    echo '{"status":"ok","implementation":"php"}';
}
