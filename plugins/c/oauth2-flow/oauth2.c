// oauth2-flow, in C: a scenario (the probe of a `script` site). The same as plugins/oauth2-flow
// (Rust). It takes a token with the OAuth 2.0 client credentials grant (RFC 6749 section 4.4, the
// client authenticating in the body, section 2.3.1) and calls an API with it:
//
// 1. `token`: POST {token_url}, form-encoded grant_type=client_credentials&client_id=...&
//    client_secret=...&scope=...; expects 200 and JSON with an "access_token" and a
//    "token_type" of Bearer (any case);
// 2. `api`: GET {api_url} with `authorization: Bearer <access_token>`; expects 200 and, when the
//    config names a "scope", a JSON "scope" (space-separated) that holds each of its scopes.
//
// Config: {"token_url": "http://127.0.0.1:8080/oauth/token", "api_url":
// "http://127.0.0.1:8080/api/me", "client_id": "sitewatch", "client_secret":
// "${OAUTH_CLIENT_SECRET}", "scope": "read"} ("scope" optional). A value that is a ${NAME}
// placeholder goes into the form as written: the host form-encodes the secret it sends in its
// place. Records `token.expires_in` when the token answer has it.
//
// Run it once (plugins/scenario-demo/server.py is a server to run it against):
//
//   OAUTH_CLIENT_SECRET=s3cret sitewatch plugin test target/plugins/oauth2-flow-c.wasm \
//       --allow 127.0.0.1 --config '{"token_url": "http://127.0.0.1:8080/oauth/token",
//       "api_url": "http://127.0.0.1:8080/api/me", "client_id": "sitewatch",
//       "client_secret": "${OAUTH_CLIENT_SECRET}", "scope": "read"}'
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
#include <strings.h>

typedef sitewatch_plugin_scenario_host_header_t header_t;
typedef sitewatch_plugin_scenario_host_response_t response_t;
typedef exports_sitewatch_plugin_script_failure_t failure_t;
#define KIND(name) SITEWATCH_PLUGIN_SCENARIO_HOST_FAILURE_KIND_##name

typedef struct {
    char *token_url, *api_url, *client_id, *client_secret, *scope;
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

// The string `key` of the JSON object answered (malloc'ed), or NULL.
static char *string_field(const response_t *r, const char *key) {
    json_t j = json_start((const char *)r->body.ptr, r->body.len);
    return json_find(&j, key) ? json_string(&j) : NULL;
}

// Kind `status`, with the OAuth "error" code (RFC 6749 section 5.2) when the answer has one.
static bool wrong_status(const response_t *r, const char *what, failure_t *err) {
    char *error = string_field(r, "error");
    char *message = error ? format("%s: status %u, expected 200 (%s)", what, r->status, error)
                          : format("%s: status %u, expected 200", what, r->status);
    free(error);
    return fail(err, KIND(STATUS), message);
}

// A 200 answer with a JSON body; another status fails with kind `status`.
static bool expect_json(const response_t *r, const char *what, failure_t *err) {
    if (r->status != 200) return wrong_status(r, what, err);
    if (!json_valid((const char *)r->body.ptr, r->body.len)) {
        return fail(err, KIND(ASSERTION), format("%s: the answer is not JSON", what));
    }
    return true;
}

// A form value (malloc'ed): percent-encoded, except a ${NAME} placeholder, which goes in as
// written (the host form-encodes the secret it sends in its place).
static char *form_value(const char *s) {
    size_t n = strlen(s);
    bool placeholder = n > 3 && strncmp(s, "${", 2) == 0 && s[n - 1] == '}' &&
                       !isdigit((unsigned char)s[2]);
    for (size_t i = 2; placeholder && i < n - 1; i++) {
        placeholder = isalnum((unsigned char)s[i]) || s[i] == '_';
    }
    if (placeholder) return strdup(s);
    char *out = malloc(n * 3 + 1), *o = out;
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

// Whether the space-separated `list` holds the `n` bytes at `word`.
static bool has_word(const char *list, const char *word, size_t n) {
    for (const char *p = list + strspn(list, " "); *p; p += strspn(p, " ")) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, word, n) == 0) return true;
        p += len;
    }
    return false;
}

// Reads the config; on failure returns false with the reason in `problem` (malloc'ed).
static bool config_parse(const char *text, size_t len, config_t *c, char **problem) {
    static const char *const KEYS[] = {"token_url", "api_url", "client_id", "client_secret",
                                       "scope"};
    char **values[] = {&c->token_url, &c->api_url, &c->client_id, &c->client_secret, &c->scope};
    json_t j = json_start(text, len);
    char *key;
    if (json_object_begin(&j)) {
        while (json_object_next_key(&j, &key)) {
            int k = 0;
            while (k < 5 && strcmp(key, KEYS[k]) != 0) k++;
            if (k == 5) {
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
    for (int k = 0; k < 4; k++) {
        if (!*values[k]) {
            *problem = format("invalid config: missing field `%s`", KEYS[k]);
            return false;
        }
    }
    return true;
}

static void config_free(config_t *c) {
    free(c->token_url);
    free(c->api_url);
    free(c->client_id);
    free(c->client_secret);
    free(c->scope);
}

// Step `token`: the access token (malloc'ed), or NULL with `err` filled in; sets `expires_in`
// when the answer has it.
static char *take_token(const config_t *c, double *expires_in, failure_t *err) {
    char *id = form_value(c->client_id), *secret = form_value(c->client_secret);
    char *scope = c->scope ? form_value(c->scope) : NULL;
    char *form = format("grant_type=client_credentials&client_id=%s&client_secret=%s%s%s", id,
                        secret, scope ? "&scope=" : "", scope ? scope : "");
    char *what = format("POST %s", c->token_url);
    header_t headers[] = {header("content-type", "application/x-www-form-urlencoded"),
                          header("accept", "application/json")};
    response_t r;
    char *token = NULL, *type = NULL;
    bool sent = send("POST", c->token_url, headers, 2, form, &r, err), ok = sent;
    if (sent) {
        ok = expect_json(&r, what, err);
        token = ok ? string_field(&r, "access_token") : NULL;
        type = ok ? string_field(&r, "token_type") : NULL;
        json_t j = json_start((const char *)r.body.ptr, r.body.len);
        if (ok && (!token || !*token)) {
            ok = fail(err, KIND(ASSERTION), format("%s: no \"access_token\" in the answer", what));
        } else if (ok && !type) {
            ok = fail(err, KIND(ASSERTION), format("%s: no \"token_type\" in the answer", what));
        } else if (ok && strcasecmp(type, "bearer") != 0) {
            ok = fail(err, KIND(ASSERTION),
                      format("%s: token_type is \"%s\", expected \"Bearer\"", what, type));
        } else if (ok && json_find(&j, "expires_in")) {
            json_number(&j, expires_in);  // left as it was unless it is a number
        }
        sitewatch_plugin_scenario_host_response_free(&r);
    }
    if (!ok) {
        free(token);
        token = NULL;
    }
    free(type);
    free(id);
    free(secret);
    free(scope);
    free(form);
    free(what);
    return token;
}

// Step `api`: a 200 answer, and one that grants every scope of the config.
static bool call_api(const config_t *c, const char *token, failure_t *err) {
    char *authorization = format("Bearer %s", token);
    char *what = format("GET %s", c->api_url);
    header_t headers[] = {header("authorization", authorization)};
    response_t r;
    bool sent = send("GET", c->api_url, headers, 1, NULL, &r, err), ok = sent;
    if (sent && !c->scope) {
        if (r.status != 200) ok = wrong_status(&r, what, err);
    } else if (sent) {
        ok = expect_json(&r, what, err);
        char *granted = ok ? string_field(&r, "scope") : NULL;
        if (ok && !granted) {
            ok = fail(err, KIND(ASSERTION), format("%s: no \"scope\" in the answer", what));
        }
        for (const char *p = c->scope + strspn(c->scope, " "); ok && *p; p += strspn(p, " ")) {
            size_t len = strcspn(p, " ");
            if (!has_word(granted, p, len)) {
                ok = fail(err, KIND(ASSERTION),
                          format("%s: scope \"%.*s\" not granted (scope \"%s\")", what, (int)len,
                                 p, granted));
            }
            p += len;
        }
        free(granted);
    }
    if (sent) sitewatch_plugin_scenario_host_response_free(&r);
    free(authorization);
    free(what);
    return ok;
}

bool exports_sitewatch_plugin_script_run(scenario_string_t *config,
                                         exports_sitewatch_plugin_script_outcome_t *ret,
                                         failure_t *err) {
    config_t c = {0};
    char *problem = NULL, *token = NULL;
    double expires_in = -1;
    bool ok = false, parsed = config_parse((const char *)config->ptr, config->len, &c, &problem);
    scenario_string_free(config);
    if (!parsed) {
        fail(err, KIND(CONFIG), problem);
    } else {
        step("token");
        token = take_token(&c, &expires_in, err);
        if (token) {
            step("api");
            ok = call_api(&c, token, err);
        }
    }
    ret->metrics.ptr = NULL;
    ret->metrics.len = 0;
    if (ok && expires_in >= 0) {
        ret->metrics.len = 1;
        ret->metrics.ptr = malloc(sizeof *ret->metrics.ptr);
        scenario_string_dup(&ret->metrics.ptr[0].name, "token.expires_in");
        ret->metrics.ptr[0].value = expires_in;
    }
    config_free(&c);
    free(token);
    return ok;
}
