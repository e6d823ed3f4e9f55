// keyword, in JavaScript: checks the response body for a string or a regular expression.
//
// The same check as plugins/keyword (Rust) and plugins/c/keyword; plugins/conformance/keyword.json
// holds the answers every build must give. Config (at least one key): {"contains": "OK"},
// {"lacks": "error"}, {"matches": "version [0-9]+"}, {"not_matches": "maint(enance)?"},
// {"case_insensitive": true} (for contains/lacks). Regular expressions are JavaScript's RegExp.
//
// An error result is a thrown *string*: componentize-js turns any other thrown value into a trap.

const TEXT_KEYS = ['contains', 'lacks', 'matches', 'not_matches'];

/** The config object; throws a string (the check's error result) when it is unusable. */
function parseConfig(text) {
  let config;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw `invalid config: ${e.message}`;
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw `invalid config: expected an object, got ${JSON.stringify(config)}`;
  }
  for (const [key, value] of Object.entries(config)) {
    if (key === 'case_insensitive') {
      if (typeof value !== 'boolean') throw 'invalid config: `case_insensitive` must be true or false';
    } else if (!TEXT_KEYS.includes(key)) {
      throw `invalid config: unknown field \`${key}\`, expected one of \`contains\`, \`lacks\`, \`matches\`, \`not_matches\`, \`case_insensitive\``;
    } else if (value !== null && typeof value !== 'string') {
      throw `invalid config: \`${key}\` must be a string`;
    }
  }
  if (TEXT_KEYS.every((k) => config[k] == null)) {
    throw 'config needs one of "contains", "lacks", "matches", "not_matches"';
  }
  return config;
}

function search(pattern, text) {
  let re;
  try {
    re = new RegExp(pattern, 'u');
  } catch (e) {
    throw `invalid regex "${pattern}": ${e.message}`;
  }
  return re.test(text);
}

/** The failure reason, or null when the body passes. */
function judge(config, body) {
  const text = new TextDecoder('utf-8').decode(body);
  const fold = config.case_insensitive ? (s) => s.toLowerCase() : (s) => s;
  const haystack = fold(text);
  const { contains, lacks, matches, not_matches: notMatches } = config;
  if (contains != null && !haystack.includes(fold(contains))) return `body does not contain "${contains}"`;
  if (lacks != null && haystack.includes(fold(lacks))) return `body contains "${lacks}"`;
  if (matches != null && !search(matches, text)) return `body does not match /${matches}/`;
  if (notMatches != null && search(notMatches, text)) return `body matches /${notMatches}/`;
  return null;
}

// The export of the `checker` world: interface `check`, function `check`.
export const check = {
  check(config, response) {
    const reason = judge(parseConfig(config), response.body);
    const verdict = reason === null ? { tag: 'pass' } : { tag: 'fail', val: reason };
    return { verdict, metrics: [] };
  },
};
