// A small strict JSON reader for a plugin's config object (an object whose values are strings,
// booleans or null) and, for scenarios, for reading answers (look a key up, walk an array, skip
// a value) and writing strings into a request's JSON body. Header-only; copy it into your own
// plugin. Errors carry a message and stop the parse.
#ifndef SITEWATCH_JSON_H
#define SITEWATCH_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end;
    int members;  // keys read so far in the object
    bool failed;
    char message[256];
} json_t;

static inline json_t json_start(const char *text, size_t len) {
    json_t j = {text, text + len, 0, false, {0}};
    return j;
}

static inline void json_fail(json_t *j, const char *fmt, ...) {
    if (j->failed) return;
    j->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->message, sizeof j->message, fmt, ap);
    va_end(ap);
}

// "<prefix>: <message>", malloc'ed.
static inline char *json_error(const json_t *j, const char *prefix) {
    size_t n = strlen(prefix) + strlen(j->message) + 3;
    char *out = malloc(n);
    snprintf(out, n, "%s: %s", prefix, j->message);
    return out;
}

static inline void json_ws(json_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static inline bool json_literal(json_t *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) >= n && memcmp(j->p, word, n) == 0) {
        j->p += n;
        return true;
    }
    return false;
}

static inline const char *json_kind(json_t *j) {
    if (j->p >= j->end) return "end of input";
    switch (*j->p) {
        case '"': return "a string";
        case '{': return "a map";
        case '[': return "a sequence";
        case 't': case 'f': return "a boolean";
        case 'n': return "null";
        default: return (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) ? "a number" : "a token";
    }
}

static inline void json_put_utf8(char *out, size_t *n, uint32_t c) {
    if (c < 0x80) {
        out[(*n)++] = (char)c;
    } else if (c < 0x800) {
        out[(*n)++] = (char)(0xC0 | (c >> 6));
        out[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (c >> 12));
        out[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (c >> 18));
        out[(*n)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (c & 0x3F));
    }
}

static inline bool json_hex4(json_t *j, uint32_t *out) {
    if (j->end - j->p < 4) return false;
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        int v = (c >= '0' && c <= '9') ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (v < 0) return false;
        *out = *out * 16 + (uint32_t)v;
    }
    return true;
}

// Reads a string at the cursor into a malloc'ed, NUL-terminated copy.
static inline char *json_string(json_t *j) {
    json_ws(j);
    if (j->p >= j->end || *j->p != '"') {
        json_fail(j, "invalid type: %s, expected a string", json_kind(j));
        return NULL;
    }
    j->p++;
    char *out = malloc((size_t)(j->end - j->p) + 1);
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) {
            json_fail(j, "control character in a string");
            break;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (j->p >= j->end) break;
        char e = *j->p++;
        uint32_t u;
        switch (e) {
            case '"': out[n++] = '"'; break;
            case '\\': out[n++] = '\\'; break;
            case '/': out[n++] = '/'; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'n': out[n++] = '\n'; break;
            case 'r': out[n++] = '\r'; break;
            case 't': out[n++] = '\t'; break;
            case 'u':
                if (!json_hex4(j, &u)) {
                    json_fail(j, "invalid \\u escape");
                    break;
                }
                if (u >= 0xD800 && u < 0xDC00) {
                    uint32_t low;
                    if (!json_literal(j, "\\u") || !json_hex4(j, &low) || low < 0xDC00 ||
                        low > 0xDFFF) {
                        json_fail(j, "unpaired surrogate in a \\u escape");
                        break;
                    }
                    u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                } else if (u >= 0xDC00 && u < 0xE000) {
                    json_fail(j, "unpaired surrogate in a \\u escape");
                    break;
                }
                json_put_utf8(out, &n, u);
                break;
            default: json_fail(j, "invalid escape `\\%c`", e);
        }
        if (j->failed) break;
    }
    if (!j->failed && j->p >= j->end) json_fail(j, "EOF while parsing a string");
    if (j->failed) {
        free(out);
        return NULL;
    }
    j->p++;  // the closing quote
    out[n] = 0;
    return out;
}

// Expects `{` at the cursor.
static inline bool json_object_begin(json_t *j) {
    json_ws(j);
    if (j->p >= j->end || *j->p != '{') {
        json_fail(j, "invalid type: %s, expected a map", json_kind(j));
        return false;
    }
    j->p++;
    j->members = 0;
    return true;
}

// Reads the next key and its colon; false at the closing `}` or on an error.
static inline bool json_object_next_key(json_t *j, char **key) {
    if (j->failed) return false;
    json_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return false;
    }
    if (j->members > 0) {
        if (j->p >= j->end || *j->p != ',') {
            json_fail(j, "expected `,` or `}`");
            return false;
        }
        j->p++;
        json_ws(j);
    }
    *key = json_string(j);
    if (!*key) return false;
    json_ws(j);
    if (j->p >= j->end || *j->p != ':') {
        free(*key);
        json_fail(j, "expected `:`");
        return false;
    }
    j->p++;
    j->members++;
    return true;
}

// A string value, or null (leaves `*out` NULL).
static inline void json_string_or_null(json_t *j, char **out) {
    json_ws(j);
    if (json_literal(j, "null")) return;
    *out = json_string(j);
}

static inline void json_bool(json_t *j, bool *out) {
    json_ws(j);
    if (json_literal(j, "true")) {
        *out = true;
    } else if (json_literal(j, "false")) {
        *out = false;
    } else {
        json_fail(j, "invalid type: %s, expected a boolean", json_kind(j));
    }
}

// After the object: only whitespace may follow. True when the whole parse succeeded.
static inline bool json_end(json_t *j) {
    if (!j->failed) {
        json_ws(j);
        if (j->p != j->end) json_fail(j, "trailing characters");
    }
    return !j->failed;
}

// A number at the cursor (JSON's grammar: no leading `+`, `.5` or `01`).
static inline bool json_number(json_t *j, double *out) {
    json_ws(j);
    const char *start = j->p, *p = j->p;
    if (p < j->end && *p == '-') p++;
    const char *digits = p;
    while (p < j->end && *p >= '0' && *p <= '9') p++;
    bool ok = p > digits && !(*digits == '0' && p - digits > 1);
    if (ok && p < j->end && *p == '.') {
        const char *frac = ++p;
        while (p < j->end && *p >= '0' && *p <= '9') p++;
        ok = p > frac;
    }
    if (ok && p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        const char *exp = p;
        while (p < j->end && *p >= '0' && *p <= '9') p++;
        ok = p > exp;
    }
    if (!ok) {
        json_fail(j, "invalid type: %s, expected a number", json_kind(j));
        return false;
    }
    char copy[64];
    size_t n = (size_t)(p - start) < sizeof copy - 1 ? (size_t)(p - start) : sizeof copy - 1;
    memcpy(copy, start, n);
    copy[n] = 0;
    *out = strtod(copy, NULL);
    j->p = p;
    return true;
}

// A string, or a number as written (`7`, `7.5`), as malloc'ed text; NULL for other values.
static inline char *json_string_or_number(json_t *j) {
    json_ws(j);
    if (j->p < j->end && *j->p == '"') return json_string(j);
    const char *start = j->p;
    double ignored;
    if (!json_number(j, &ignored)) return NULL;
    size_t n = (size_t)(j->p - start);
    char *out = malloc(n + 1);
    memcpy(out, start, n);
    out[n] = 0;
    return out;
}

static inline void json_skip_depth(json_t *j, int depth);

// Skips the value at the cursor, whatever it is, checking it is well-formed.
static inline void json_skip(json_t *j) { json_skip_depth(j, 0); }

static inline void json_skip_depth(json_t *j, int depth) {
    json_ws(j);
    if (depth > 64) {
        json_fail(j, "nested too deeply");
        return;
    }
    if (j->p < j->end && (*j->p == '{' || *j->p == '[')) {
        char close = *j->p == '{' ? '}' : ']';
        j->p++;
        for (int i = 0; !j->failed; i++) {
            json_ws(j);
            if (j->p < j->end && *j->p == close) {
                j->p++;
                return;
            }
            if (i > 0 && !json_literal(j, ",")) {
                json_fail(j, "expected `,` or `%c`", close);
                return;
            }
            if (close == '}') {
                free(json_string(j));
                json_ws(j);
                if (!j->failed && !json_literal(j, ":")) json_fail(j, "expected `:`");
            }
            if (!j->failed) json_skip_depth(j, depth + 1);
        }
    } else if (j->p < j->end && *j->p == '"') {
        free(json_string(j));
    } else if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
        double ignored;
        json_number(j, &ignored);
    } else if (!json_literal(j, "true") && !json_literal(j, "false") && !json_literal(j, "null")) {
        json_fail(j, "expected a value, found %s", json_kind(j));
    }
}

// Whether `text` is one well-formed JSON value.
static inline bool json_valid(const char *text, size_t len) {
    json_t j = json_start(text, len);
    json_skip(&j);
    return json_end(&j);
}

// Looks `key` up in the object at the cursor: true with the cursor at its value, false when the
// value is not an object or has no such key. (The rest of the object is left unread.)
static inline bool json_find(json_t *j, const char *key) {
    if (!json_object_begin(j)) return false;
    char *k;
    while (json_object_next_key(j, &k)) {
        bool found = strcmp(k, key) == 0;
        free(k);
        if (found) return true;
        json_skip(j);
    }
    return false;
}

// Expects `[` at the cursor.
static inline bool json_array_begin(json_t *j) {
    json_ws(j);
    if (!json_literal(j, "[")) {
        json_fail(j, "invalid type: %s, expected a sequence", json_kind(j));
        return false;
    }
    return true;
}

// Moves to element number `index` (from 0, in order); false at the closing `]` or on an error:
// `for (size_t i = 0; json_array_next(&j, i); i++) { read or json_skip the element }`.
static inline bool json_array_next(json_t *j, size_t index) {
    json_ws(j);
    if (j->failed || json_literal(j, "]")) return false;
    if (index > 0 && !json_literal(j, ",")) {
        json_fail(j, "expected `,` or `]`");
        return false;
    }
    return true;
}

// `s` as a JSON string literal, quotes included (malloc'ed): for building a request's body.
static inline char *json_quote(const char *s) {
    char *out = malloc(strlen(s) * 6 + 3), *o = out;
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = 0;
    return out;
}

#endif
