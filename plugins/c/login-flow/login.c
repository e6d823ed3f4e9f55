// login-flow, in C: a scenario (the probe of a `script` site). The same as plugins/login-flow
// (Rust). It logs in to a shop, lists the orders with the token it got and checks the first
// order, in three steps:
//
// 1. `login`: POST {url}/login with {"user": ..., "password": ...}; expects 200 and a "token";
// 2. `orders`: GET {url}/api/orders with `authorization: Bearer <token>`; expects 200 and
//    {"orders": [{"id": 7, ...}, ...]}, at least one;
// 3. `order`: GET {url}/api/orders/<first id>; expects 200 and a "status" equal to
//    "expect_status" ("paid" by default).
//
// Config: {"url": "http://127.0.0.1:8080", "user": "alice", "password": "${SHOP_PASSWORD}"},
// optionally "expect_status". The plugin sees ${SHOP_PASSWORD} as written and puts it in the
// body; the host sends the secret in its place. Records `orders.count`.
//
// Run it once (plugins/scenario-demo/server.py is a shop to run it against):
//
//   SHOP_PASSWORD=s3cret sitewatch plugin test target/plugins/login-flow-c.wasm \
//       --allow 127.0.0.1 --config '{"url": "http://127.0.0.1:8080", "user": "alice",
//       "password": "${SHOP_PASSWORD}"}'
//
// Memory: the host's arguments are the plugin's to free, and what it returns is freed after
// the call; what it passes to an import stays its own.

#include "scenario.h"
#include "json.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef sitewatch_plugin_scenario_host_header_t header_t;
typedef sitewatch_plugin_scenario_host_response_t response_t;
typedef exports_sitewatch_plugin_script_failure_t failure_t;
#define KIND(name) SITEWATCH_PLUGIN_SCENARIO_HOST_FAILURE_KIND_##name

typedef struct {
    char *url, *user, *password, *expect_status;
} config_t;

// printf into a malloc'ed string.
static char *format(const char *fmt, ...) {
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *out = malloc((size_t)n + 1);
    vsnprintf(out, (size_t)n + 1, fmt, again);
    va_end(again);
    va_end(ap);
    return out;
}

// Fills in the run's error result with `message` (malloc'ed; taken) and returns false.
static bool fail(failure_t *err, uint8_t kind, char *message) {
    err->kind = kind;
    scenario_string_set(&err->message, message);
    err->step.is_some = false;  // the step named last
    err->metrics.ptr = NULL;
    err->metrics.len = 0;
    return false;
}

static scenario_string_t text(const char *s) {
    return (scenario_string_t){(uint8_t *)s, strlen(s)};
}

static header_t header(const char *name, const char *value) {
    return (header_t){text(name), text(value)};
}

static void step(const char *name) {
    scenario_string_t s = text(name);
    sitewatch_plugin_scenario_host_step(&s);
}

// Sends a request (`body` NULL for none). One that got no answer fails the run with the host's
// kind and message.
static bool send(const char *method, const char *url, header_t *headers, size_t n_headers,
                 const char *body, response_t *response, failure_t *err) {
    sitewatch_plugin_scenario_host_request_t request = {
        .method = text(method),
        .url = text(url),
        .headers = {headers, n_headers},
        .body = {body != NULL, {(uint8_t *)body, body ? strlen(body) : 0}},
        .timeout_ms = {false, 0},
    };
    sitewatch_plugin_scenario_host_send_error_t e;
    if (sitewatch_plugin_scenario_host_send(&request, response, &e)) return true;
    fail(err, e.kind, format("%.*s", (int)e.message.len, (const char *)e.message.ptr));
    sitewatch_plugin_scenario_host_send_error_free(&e);
    return false;
}

// A 200 answer with a JSON body; another status fails with kind `status`.
static bool expect_json(const response_t *r, const char *what, failure_t *err) {
    if (r->status != 200) {
        return fail(err, KIND(STATUS), format("%s: status %u, expected 200", what, r->status));
    }
    if (!json_valid((const char *)r->body.ptr, r->body.len)) {
        return fail(err, KIND(ASSERTION), format("%s: the answer is not JSON", what));
    }
    return true;
}

// The string `key` of the JSON object answered (malloc'ed), or NULL.
static char *string_field(const response_t *r, const char *key) {
    json_t j = json_start((const char *)r->body.ptr, r->body.len);
    return json_find(&j, key) ? json_string(&j) : NULL;
}

// `s` with bytes other than letters, digits and -._~ as %XX (malloc'ed).
static char *pct_encode(const char *s) {
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    for (; *s; s++) {
        unsigned char b = (unsigned char)*s;
        if (isalnum(b) || strchr("-._~", b)) {
            *o++ = (char)b;
        } else {
            o += sprintf(o, "%%%02X", b);
        }
    }
    *o = 0;
    return out;
}

// Reads the config; on failure returns false with the reason in `problem` (malloc'ed).
static bool config_parse(const char *text, size_t len, config_t *c, char **problem) {
    static const char *const KEYS[] = {"url", "user", "password", "expect_status"};
    char **values[] = {&c->url, &c->user, &c->password, &c->expect_status};
    json_t j = json_start(text, len);
    char *key;
    if (json_object_begin(&j)) {
        while (json_object_next_key(&j, &key)) {
            int k = 0;
            while (k < 4 && strcmp(key, KEYS[k]) != 0) k++;
            if (k == 4) {
                json_fail(&j, "unknown field `%s`", key);
            } else if (*values[k]) {
                json_fail(&j, "duplicate field `%s`", key);
            } else {
                *values[k] = json_string(&j);
            }
            free(key);
        }
    }
    if (!json_end(&j)) {
        *problem = json_error(&j, "invalid config");
        return false;
    }
    for (int k = 0; k < 3; k++) {
        if (!*values[k]) {
            *problem = format("invalid config: missing field `%s`", KEYS[k]);
            return false;
        }
    }
    if (!c->expect_status) c->expect_status = strdup("paid");
    size_t n = strlen(c->url);  // no trailing `/`: paths are added to it
    while (n > 0 && c->url[n - 1] == '/') c->url[--n] = 0;
    return true;
}

static void config_free(config_t *c) {
    free(c->url);
    free(c->user);
    free(c->password);
    free(c->expect_status);
}

// Step `login`: the token (malloc'ed), or NULL with `err` filled in.
static char *login(const config_t *c, failure_t *err) {
    char *user = json_quote(c->user), *password = json_quote(c->password);
    char *body = format("{\"user\": %s, \"password\": %s}", user, password);
    char *url = format("%s/login", c->url);
    header_t headers[] = {header("content-type", "application/json")};
    response_t r;
    char *token = NULL;
    if (send("POST", url, headers, 1, body, &r, err)) {
        if (expect_json(&r, "POST /login", err)) {
            token = string_field(&r, "token");
            if (!token || !*token) {
                free(token);
                token = NULL;
                fail(err, KIND(ASSERTION), strdup("POST /login: no \"token\" in the answer"));
            }
        }
        sitewatch_plugin_scenario_host_response_free(&r);
    }
    free(user);
    free(password);
    free(body);
    free(url);
    return token;
}

// Step `orders`: the first order's id (malloc'ed) and the number of orders, or NULL with `err`
// filled in.
static char *first_order(const config_t *c, header_t *bearer, size_t *count, failure_t *err) {
    char *url = format("%s/api/orders", c->url);
    response_t r;
    char *id = NULL;
    if (send("GET", url, bearer, 1, NULL, &r, err)) {
        if (expect_json(&r, "GET /api/orders", err)) {
            json_t j = json_start((const char *)r.body.ptr, r.body.len);
            if (!json_find(&j, "orders") || !json_array_begin(&j)) {
                fail(err, KIND(ASSERTION),
                     strdup("GET /api/orders: no \"orders\" list in the answer"));
            } else {
                for (*count = 0; json_array_next(&j, *count); ++*count) {
                    json_t order = j;  // a look into the element, leaving `j` before it
                    if (*count == 0 && json_find(&order, "id")) id = json_string_or_number(&order);
                    json_skip(&j);
                }
                if (*count == 0) {
                    fail(err, KIND(ASSERTION), strdup("GET /api/orders: no orders"));
                } else if (!id) {
                    fail(err, KIND(ASSERTION),
                         strdup("GET /api/orders: the first order has no \"id\""));
                }
            }
        }
        sitewatch_plugin_scenario_host_response_free(&r);
    }
    free(url);
    return id;
}

// Step `order`: the order's status is the expected one.
static bool check_order(const config_t *c, header_t *bearer, const char *id, failure_t *err) {
    char *encoded = pct_encode(id);
    char *path = format("/api/orders/%s", encoded);
    char *url = format("%s%s", c->url, path);
    char *what = format("GET %s", path);
    response_t r;
    bool ok = send("GET", url, bearer, 1, NULL, &r, err);
    if (ok) {
        ok = expect_json(&r, what, err);
        char *status = ok ? string_field(&r, "status") : NULL;
        if (ok && !status) {
            ok = fail(err, KIND(ASSERTION), format("order %s has no \"status\"", id));
        } else if (ok && strcmp(status, c->expect_status) != 0) {
            ok = fail(err, KIND(ASSERTION), format("order %s is \"%s\", expected \"%s\"", id,
                                                   status, c->expect_status));
        }
        free(status);
        sitewatch_plugin_scenario_host_response_free(&r);
    }
    free(encoded);
    free(path);
    free(url);
    free(what);
    return ok;
}

bool exports_sitewatch_plugin_script_run(scenario_string_t *config,
                                         exports_sitewatch_plugin_script_outcome_t *ret,
                                         failure_t *err) {
    config_t c = {0};
    char *problem = NULL, *token = NULL, *authorization = NULL, *id = NULL;
    size_t count = 0;
    bool ok = false, parsed = config_parse((const char *)config->ptr, config->len, &c, &problem);
    scenario_string_free(config);
    if (!parsed) {
        fail(err, KIND(CONFIG), problem);
        goto done;
    }

    step("login");
    token = login(&c, err);
    if (!token) goto done;
    authorization = format("Bearer %s", token);
    header_t bearer[] = {header("authorization", authorization)};

    step("orders");
    id = first_order(&c, bearer, &count, err);
    if (!id) goto done;

    step("order");
    if (!check_order(&c, bearer, id, err)) goto done;

    ret->metrics.len = 1;
    ret->metrics.ptr = malloc(sizeof *ret->metrics.ptr);
    scenario_string_dup(&ret->metrics.ptr[0].name, "orders.count");
    ret->metrics.ptr[0].value = (double)count;
    ok = true;
done:
    config_free(&c);
    free(token);
    free(authorization);
    free(id);
    return ok;
}
