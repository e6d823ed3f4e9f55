// keyword, in C: checks the response body for a string or a regular expression. The same check
// as plugins/keyword (Rust); plugins/conformance/keyword.json holds the answers both must give.
//
// Config (at least one key): {"contains": "OK"}, {"lacks": "error"},
// {"matches": "version [0-9]+"}, {"not_matches": "maint(enance)?"},
// {"case_insensitive": true} (for contains/lacks; folds ASCII letters).
// Regular expressions are POSIX extended (regcomp), which reads the common syntax the same way.

#define _GNU_SOURCE // memmem
#include "checker.h"
#include "json.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *contains, *lacks, *matches, *not_matches;
    bool case_insensitive;
} config_t;

static void config_free(config_t *c) {
    free(c->contains);
    free(c->lacks);
    free(c->matches);
    free(c->not_matches);
}

// Reads the config object; on failure returns false with the reason in `err` (malloc'ed).
static bool config_parse(const char *text, size_t len, config_t *c, char **err) {
    static const char *const KEYS[] = {"contains", "lacks", "matches", "not_matches",
                                       "case_insensitive"};
    char **strings[] = {&c->contains, &c->lacks, &c->matches, &c->not_matches};
    json_t j = json_start(text, len);
    if (!json_object_begin(&j)) {
        *err = json_error(&j, "invalid config");
        return false;
    }
    char *key;
    bool seen[5] = {false};
    while (json_object_next_key(&j, &key)) {
        int k = -1;
        for (int i = 0; i < 5; i++) {
            if (strcmp(key, KEYS[i]) == 0) k = i;
        }
        if (k < 0) {
            json_fail(&j, "unknown field `%s`, expected one of `contains`, `lacks`, `matches`, "
                          "`not_matches`, `case_insensitive`", key);
        } else if (seen[k]) {
            json_fail(&j, "duplicate field `%s`", key);
        } else if (k < 4) {
            seen[k] = true;
            json_string_or_null(&j, strings[k]);
        } else {
            seen[k] = true;
            json_bool(&j, &c->case_insensitive);
        }
        free(key);
        if (j.failed) break;
    }
    if (!json_end(&j)) {
        *err = json_error(&j, "invalid config");
        return false;
    }
    return true;
}

static char *format(const char *fmt, const char *arg) {
    size_t n = strlen(fmt) + strlen(arg) + 1;
    char *out = malloc(n);
    snprintf(out, n, fmt, arg);
    return out;
}

// A copy of `len` bytes, NUL-terminated, lower-cased (ASCII) when `fold` is set.
static char *copy(const uint8_t *bytes, size_t len, bool fold) {
    char *out = malloc(len + 1);
    for (size_t i = 0; i < len; i++) out[i] = fold ? (char)tolower(bytes[i]) : (char)bytes[i];
    out[len] = 0;
    return out;
}

static bool contains(const char *haystack, size_t len, const char *needle, bool fold) {
    char *n = copy((const uint8_t *)needle, strlen(needle), fold);
    bool found = memmem(haystack, len, n, strlen(n)) != NULL;
    free(n);
    return found;
}

// 1 when `pattern` matches `text`, 0 when not, -1 (with `err` set) when it does not compile.
static int regex_matches(const char *pattern, const char *text, char **err) {
    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[200];
        regerror(rc, &re, why, sizeof why);
        size_t n = strlen(pattern) + strlen(why) + 32;
        *err = malloc(n);
        snprintf(*err, n, "invalid regex \"%s\": %s", pattern, why);
        return -1;
    }
    int hit = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return hit;
}

// Judges the body: returns NULL for a pass, or the failure reason; sets `err` instead when the
// config is unusable.
static char *judge(const config_t *c, const uint8_t *body, size_t len, char **err) {
    char *folded = copy(body, len, c->case_insensitive);
    char *reason = NULL;
    if (c->contains && !contains(folded, len, c->contains, c->case_insensitive)) {
        reason = format("body does not contain \"%s\"", c->contains);
    } else if (c->lacks && contains(folded, len, c->lacks, c->case_insensitive)) {
        reason = format("body contains \"%s\"", c->lacks);
    }
    free(folded);
    if (reason) return reason;
    char *text = copy(body, len, false);
    if (c->matches) {
        int hit = regex_matches(c->matches, text, err);
        if (hit == 0) reason = format("body does not match /%s/", c->matches);
    }
    if (!reason && !*err && c->not_matches) {
        int hit = regex_matches(c->not_matches, text, err);
        if (hit == 1) reason = format("body matches /%s/", c->not_matches);
    }
    free(text);
    return reason;
}

bool exports_sitewatch_plugin_check_check(checker_string_t *config,
                                          exports_sitewatch_plugin_check_response_t *response,
                                          exports_sitewatch_plugin_check_check_result_t *ret,
                                          checker_string_t *err) {
    config_t c = {0};
    char *error = NULL;
    char *reason = NULL;
    if (config_parse((const char *)config->ptr, config->len, &c, &error)) {
        if (!c.contains && !c.lacks && !c.matches && !c.not_matches) {
            error = strdup("config needs one of \"contains\", \"lacks\", \"matches\", "
                           "\"not_matches\"");
        } else {
            reason = judge(&c, response->body.ptr, response->body.len, &error);
        }
    }
    config_free(&c);
    checker_string_free(config);
    exports_sitewatch_plugin_check_response_free(response);
    if (error) {
        free(reason);
        checker_string_set(err, error); // takes the malloc'ed text; freed after the call
        return false;
    }
    ret->metrics.ptr = NULL;
    ret->metrics.len = 0;
    if (reason) {
        ret->verdict.tag = SITEWATCH_PLUGIN_TYPES_VERDICT_FAIL;
        checker_string_set(&ret->verdict.val.fail, reason);
    } else {
        ret->verdict.tag = SITEWATCH_PLUGIN_TYPES_VERDICT_PASS;
    }
    return true;
}
