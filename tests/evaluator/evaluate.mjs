// Independent IAM policy evaluator: the oracle of cutoff's tests.
//
// It is not cutoff's code: it runs @cloud-copilot/iam-simulate (installed into the
// project's node_modules/ by `make tools`), so "this deny really stops a session
// issued before the cutoff" is checked by someone else's implementation of IAM's
// evaluation logic, not by the code that wrote the deny.
//
// stdin: one request object, or an array of them (one node start-up for many):
//   {"identity_policies": [<policy document as JSON string or object>, ...],
//    "action": "s3:GetObject",
//    "resource": "arn:aws:s3:::bucket/key",
//    "principal": "arn:aws:iam::123456789012:role/payments-api",
//    "resource_account": "123456789012",          (optional; default: the
//                                                   resource ARN's account, else
//                                                   the principal's)
//    "context": {"aws:TokenIssueTime": "2026-11-23T11:59:00Z", ...}}
//   A context key that is absent is absent for the evaluator too (a long-term
//   access key has no aws:TokenIssueTime).
//
// stdout: one result object (or an array, in the order of the requests):
//   {"result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied",
//    "deny_statements": [{"policy": "policy-0", "sid": "RevokeOlderSessions"}],
//    "allow_statements": [...],
//    "ignored_context_keys": [...],
//    "absent_condition_keys": ["aws:TokenIssueTime"],
//    "explanation": <the library's own analysis, as it returned it>}
//   `result` is iam-simulate's `overallResult`, unchanged. Identity policy i is
//   named "policy-i". `ignored_context_keys`: context keys the library dropped as
//   not applicable to the action. `absent_condition_keys`: keys the policies'
//   conditions name that the context lacks (such a condition sees the key as
//   missing: DateLessThan on it does not match).
//
//   When the input cannot be evaluated faithfully the output is
//   {"result": "Error", "errors": {...}} and the exit status is 2: the library
//   rejects the policy, action or resource (its validation errors are passed on),
//   a policy is not JSON, or a condition uses an operator that does not exist.
//   The last check is ours: iam-simulate evaluates an unknown operator (a typo
//   such as "DateLesThan") as a condition that never matches, which would make a
//   broken deny look like one that correctly lets a request through.

import { runSimulation } from '@cloud-copilot/iam-simulate'

const readStdin = async () => {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

const accountOf = (arn) => {
  const parts = typeof arn === 'string' ? arn.split(':') : []
  return parts.length >= 5 && /^\d{12}$/.test(parts[4]) ? parts[4] : undefined
}

// IAM's condition operators (lower case), without the ForAllValues:/ForAnyValue:
// prefixes and the IfExists suffix.
const OPERATORS = new Set(
  [
    'StringEquals', 'StringNotEquals', 'StringEqualsIgnoreCase', 'StringNotEqualsIgnoreCase',
    'StringLike', 'StringNotLike',
    'NumericEquals', 'NumericNotEquals', 'NumericLessThan', 'NumericLessThanEquals',
    'NumericGreaterThan', 'NumericGreaterThanEquals',
    'DateEquals', 'DateNotEquals', 'DateLessThan', 'DateLessThanEquals',
    'DateGreaterThan', 'DateGreaterThanEquals',
    'Bool', 'BinaryEquals', 'IpAddress', 'NotIpAddress',
    'ArnEquals', 'ArnLike', 'ArnNotEquals', 'ArnNotLike', 'Null'
  ].map((o) => o.toLowerCase())
)

const isKnownOperator = (operator) => {
  let base = operator.replace(/^(ForAllValues|ForAnyValue):/i, '').toLowerCase()
  const ifExists = /^(.+)ifexists$/.exec(base)
  // Null has no IfExists form.
  if (ifExists && ifExists[1] !== 'null') base = ifExists[1]
  return OPERATORS.has(base)
}

// [{operator, key}] of every condition of a policy document.
const conditionsOf = (policy) => {
  const statements = Array.isArray(policy?.Statement) ? policy.Statement : [policy?.Statement]
  return statements.flatMap((statement) =>
    Object.entries(statement?.Condition ?? {}).flatMap(([operator, keys]) =>
      Object.keys(keys ?? {}).map((key) => ({ operator, key }))
    )
  )
}

const statementRefs = (statements) =>
  (statements ?? []).map((s) => ({
    policy: s.policyId,
    sid: s.statement?.sid?.() ?? null,
    index: s.statement?.index?.() ?? null
  }))

const evaluateOne = async (req, index) => {
  if (req === null || typeof req !== 'object') throw new Error(`request ${index} is not an object`)
  for (const field of ['action', 'resource', 'principal']) {
    if (typeof req[field] !== 'string') throw new Error(`request ${index}: "${field}" must be a string`)
  }
  const identityPolicies = (req.identity_policies ?? []).map((p, i) => ({
    name: `policy-${i}`,
    policy: typeof p === 'string' ? JSON.parse(p) : p
  }))
  const conditions = identityPolicies.flatMap((p) => conditionsOf(p.policy))
  const unknownOperators = [...new Set(conditions.map((c) => c.operator).filter((o) => !isKnownOperator(o)))]
  if (unknownOperators.length > 0) {
    return {
      result: 'Error',
      errors: { message: `unknown condition operator(s): ${unknownOperators.join(', ')}`, unknownOperators }
    }
  }
  const context = req.context ?? {}
  const present = new Set(Object.keys(context).map((k) => k.toLowerCase()))
  const absentConditionKeys = [
    ...new Set(conditions.map((c) => c.key).filter((k) => !present.has(k.toLowerCase())))
  ].sort()

  const resourceAccount =
    req.resource_account ?? accountOf(req.resource) ?? accountOf(req.principal) ?? '123456789012'

  const simulation = {
    request: {
      principal: req.principal,
      action: req.action,
      resource: { resource: req.resource, accountId: resourceAccount },
      contextVariables: context
    },
    identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: []
  }
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })

  if (response.resultType === 'error') {
    return { result: 'Error', errors: response.errors }
  }
  // 'single': one resource. 'wildcard': the resource had a wildcard and the
  // library ran one simulation per matching pattern; overallResult combines them.
  const results = response.resultType === 'single' ? [response.result] : response.results
  const identity = results.map((r) => r.analysis?.identityAnalysis)
  return {
    result: response.overallResult,
    deny_statements: identity.flatMap((a) => statementRefs(a?.denyStatements)),
    allow_statements: identity.flatMap((a) => statementRefs(a?.allowStatements)),
    ignored_context_keys: [...new Set(results.flatMap((r) => r.ignoredContextKeys ?? []))],
    absent_condition_keys: absentConditionKeys,
    explanation: response.resultType === 'single' ? response.result : response.results
  }
}

// The analysis holds class instances (parsed statements) whose fields are
// private; JSON.stringify keeps their plain data and drops functions.
const replacer = (_key, value) => (typeof value === 'function' ? undefined : value)

const main = async () => {
  let input
  try {
    input = JSON.parse(await readStdin())
  } catch (e) {
    console.log(JSON.stringify({ result: 'Error', errors: { message: `stdin is not JSON: ${e.message}` } }))
    process.exit(2)
  }
  const batch = Array.isArray(input)
  const requests = batch ? input : [input]
  const out = []
  for (const [i, req] of requests.entries()) {
    try {
      out.push(await evaluateOne(req, i))
    } catch (e) {
      out.push({ result: 'Error', errors: { message: String(e?.message ?? e) } })
    }
  }
  process.stdout.write(JSON.stringify(batch ? out : out[0], replacer) + '\n')
  process.exitCode = out.some((r) => r.result === 'Error') ? 2 : 0
}

await main()
