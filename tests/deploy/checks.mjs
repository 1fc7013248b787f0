// What facts.mjs and csi_facts.mjs share: a tally of checks and failures,
// and the flags and variables of a program's CLI11 --help.

export const failures = [];
let count = 0;

// Records one check; `what` is the failure's message. Returns `cond`.
export function expect(cond, what) {
  count++;
  if (!cond) failures.push(what);
  return cond;
}

export function checks() {
  return count;
}

// The --flags and (Env:NAME) variables a CLI11 --help lists.
export function parseHelp(text) {
  const flags = new Set(), envs = new Set();
  for (const m of text.matchAll(/^\s+(?:-\w,)?(--[a-z0-9][a-z0-9-]*)/gm)) flags.add(m[1]);
  for (const m of text.matchAll(/\(Env:(\w+)\)/g)) envs.add(m[1]);
  return { flags, envs };
}
