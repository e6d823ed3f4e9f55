// {{name}}: a sitewatch scenario in C, the probe of a `script` site. One step, `get`: GET the
// config's "url" and expect 200. Add steps with sitewatch_plugin_scenario_host_step and more
// requests with sitewatch_plugin_scenario_host_send (plugins/c/login-flow is a longer example).
// The site's `config` arrives as JSON text (json.h reads it), its ${NAME} placeholders as
// written: put them in requests, and the host sends the secrets in their place.
//
// `cargo xtask build-plugins` generates the bindings (scenario.h) from the WIT version named in
// `wit-version` (wit/0.4.0/) and builds target/plugins/{{name}}-c.wasm; run it once with
//   sitewatch plugin test target/plugins/{{name}}-c.wasm --config '{"url": "http://127.0.0.1:8080/"}'

#include "scenario.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef exports_sitewatch_plugin_script_failure_t failure_t;

// Fills in the run's error result with `message` (malloc'ed; taken) and returns false.
static bool fail(failure_t *err, uint8_t kind, char *message) {
    err->kind = kind;
    scenario_string_set(&err->message, message);
    err->step.is_some = false;  // the step named last
    err->metrics.ptr = NULL;
    err->metrics.len = 0;
    return false;
}

bool exports_sitewatch_plugin_script_run(scenario_string_t *config,
                                         exports_sitewatch_plugin_script_outcome_t *ret,
                                         failure_t *err) {
    // The arguments are this function's to free; what it returns is freed after the call.
    json_t j = json_start((const char *)config->ptr, config->len);
    char *url = json_find(&j, "url") ? json_string(&j) : NULL;
    scenario_string_free(config);
    if (!url) {
        return fail(err, SITEWATCH_PLUGIN_SCENARIO_HOST_FAILURE_KIND_CONFIG,
                    strdup("invalid config: missing field `url`"));
    }

    scenario_string_t step = {(uint8_t *)"get", 3};
    sitewatch_plugin_scenario_host_step(&step);
    sitewatch_plugin_scenario_host_request_t request = {
        .method = {(uint8_t *)"GET", 3},
        .url = {(uint8_t *)url, strlen(url)},
        // no headers, no body, no time limit of its own (the run's is the limit)
    };
    sitewatch_plugin_scenario_host_response_t response;
    sitewatch_plugin_scenario_host_send_error_t e;
    bool ok = sitewatch_plugin_scenario_host_send(&request, &response, &e);  // borrows `request`
    if (!ok) {
        // No answer: the run fails with the host's kind and message (handed on, not copied).
        err->kind = e.kind;
        err->message = e.message;
        err->step.is_some = false;
        err->metrics.ptr = NULL;
        err->metrics.len = 0;
    } else {
        if (response.status != 200) {
            size_t n = strlen(url) + 64;
            char *why = malloc(n);
            snprintf(why, n, "GET %s: status %u, expected 200", url, response.status);
            ok = fail(err, SITEWATCH_PLUGIN_SCENARIO_HOST_FAILURE_KIND_STATUS, why);
        }
        sitewatch_plugin_scenario_host_response_free(&response);
    }
    free(url);
    // Metrics: a malloc'ed array in ret->metrics, each name set with scenario_string_dup.
    ret->metrics.ptr = NULL;
    ret->metrics.len = 0;
    return ok;
}
