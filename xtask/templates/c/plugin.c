// {{name}}: a sitewatch check in C. It fails when the response body is empty; change `judge`
// to decide what you need. `cargo xtask build-plugins` generates the bindings (checker.h) from
// the WIT version named in `wit-version` (wit/0.3.0/) and builds target/plugins/{{name}}-c.wasm.
// The site's `config` for this check arrives as JSON text; plugins/c/keyword/json.h is a small
// reader you can copy in.

#include "checker.h"

#include <stdlib.h>
#include <string.h>

// The failure reason (a static string), or NULL for a pass.
static const char *judge(const uint8_t *body, size_t len) {
    (void)body;
    return len == 0 ? "the body is empty" : NULL;
}

bool exports_sitewatch_plugin_check_check(checker_string_t *config,
                                          exports_sitewatch_plugin_check_response_t *response,
                                          exports_sitewatch_plugin_check_check_result_t *ret,
                                          checker_string_t *err) {
    (void)err;  // set it (and return false) when the config is unusable
    const char *reason = judge(response->body.ptr, response->body.len);
    // The arguments belong to this function; what it returns is freed by the host's call.
    checker_string_free(config);
    exports_sitewatch_plugin_check_response_free(response);
    ret->metrics.ptr = NULL;
    ret->metrics.len = 0;
    if (reason) {
        ret->verdict.tag = SITEWATCH_PLUGIN_TYPES_VERDICT_FAIL;
        checker_string_dup(&ret->verdict.val.fail, reason);
    } else {
        ret->verdict.tag = SITEWATCH_PLUGIN_TYPES_VERDICT_PASS;
    }
    return true;
}
