<?php
// Front controller of the sample monolith. Nginx serves /static/* itself and
// sends every other request here (try_files $uri /index.php$is_args$args).
//
// Routing is by method and path only. A route's file is required when that
// route is hit, so the legacy routes keep working while src/events.php or
// src/campaigns.php are still being written, and a missing file answers 404
// like an unknown route instead of a fatal error on every request.

declare(strict_types=1);

const SRC_DIR = __DIR__ . '/../src';

// The raw request target, not $_SERVER['SCRIPT_NAME']: try_files rewrote the
// URI to /index.php, but REQUEST_URI still carries what the client sent.
$uri = $_SERVER['REQUEST_URI'] ?? '/';
$path = rawurldecode(explode('?', $uri, 2)[0]);
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
// HEAD is GET without a body; Nginx drops the body for us.
$routeMethod = $method === 'HEAD' ? 'GET' : $method;

// [method, path pattern (regex over the decoded path), file, function].
// The pattern's named groups become the function's arguments, in order.
$routes = [
    ['GET',  '#^/$#',                          'legacy.php',    'legacy_home'],
    ['GET',  '#^/healthz-php$#',               'legacy.php',    'legacy_healthz'],
    ['GET',  '#^/login$#',                     'legacy.php',    'legacy_login_form'],
    ['POST', '#^/login$#',                     'legacy.php',    'legacy_login'],
    ['GET',  '#^/account$#',                   'legacy.php',    'legacy_account'],
    ['GET',  '#^/session/hold$#',              'legacy.php',    'legacy_session_hold'],
    ['POST', '#^/session/release$#',           'legacy.php',    'legacy_session_release'],
    ['POST', '#^/upload$#',                    'legacy.php',    'legacy_upload'],
    ['GET',  '#^/download/(?<mb>[0-9]+)$#',    'legacy.php',    'legacy_download'],
    // Any method: the proxy's fidelity tests also echo POST/PUT/DELETE.
    ['*',    '#^/headers$#',                   'legacy.php',    'legacy_headers'],
    ['GET',  '#^/slow$#',                      'legacy.php',    'legacy_slow'],
    ['GET',  '#^/status/(?<code>[0-9]+)$#',    'legacy.php',    'legacy_status'],
    ['GET',  '#^/redirect$#',                  'legacy.php',    'legacy_redirect'],
    ['GET',  '#^/debug/now$#',                 'legacy.php',    'legacy_debug_now'],
    ['GET',  '#^/api/v1/ping$#',               'legacy.php',    'legacy_ping'],
    ['POST', '#^/api/v1/events$#',             'events.php',    'events_handle'],
    ['GET',  '#^/api/v1/campaigns/(?<id>[^/]+)$#', 'campaigns.php', 'campaigns_get'],
    ['GET',  '#^/api/v1/campaigns$#',          'campaigns.php', 'campaigns_list'],
];

function send_json_error(int $status, string $code, string $message, array $headers = []): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    foreach ($headers as $h) {
        header($h);
    }
    echo json_encode(['error' => $code, 'message' => $message], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
}

$allowed = [];
foreach ($routes as [$m, $pattern, $file, $fn]) {
    if (preg_match($pattern, $path, $match) !== 1) {
        continue;
    }
    if ($m !== '*' && $m !== $routeMethod) {
        $allowed[] = $m;
        continue;
    }
    $full = SRC_DIR . '/' . $file;
    if (!is_file($full)) {
        send_json_error(404, 'not_found', "no route for $method $path");
        return;
    }
    require_once $full;
    if (!function_exists($fn)) {
        send_json_error(404, 'not_found', "no route for $method $path");
        return;
    }
    $args = array_values(array_filter($match, 'is_string', ARRAY_FILTER_USE_KEY));
    $fn(...$args);
    return;
}

if ($allowed !== []) {
    // The path exists with another method: say which ones (RFC 9110 §15.5.6).
    if (in_array('GET', $allowed, true)) {
        $allowed[] = 'HEAD';
    }
    send_json_error(405, 'method_not_allowed', "$method not allowed on $path", ['Allow: ' . implode(', ', $allowed)]);
    return;
}
send_json_error(404, 'not_found', "no route for $method $path");
