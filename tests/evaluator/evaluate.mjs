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
//    "context": {"aws:TokenIssueTime": "2026-11-23T11:59:00Z", ...},
//    "resource_policy": <policy document, JSON string or object>,   (optional)
//    "service_control_policies": [<policy document>, ...],          (optional)
//    "derive_context": true}                                         (optional)
//   A context key that is absent is absent for the evaluator too (a long-term
//   access key has no aws:TokenIssueTime).
//
//   `principal` is an IAM role or user ARN, an account root ARN, a role session
//   (arn:aws:sts::123456789012:assumed-role/Role/session) or a service principal
//   (cloudwatch.amazonaws.com). `resource_policy` is the resource's own policy
//   (queue, topic, bus, key or function policy, or a role's trust policy): the
//   library decides same-account and cross-account requests the way the service
//   does (a KMS key or a role trust policy must name the account or the principal;
//   a queue trusts the identity policies of its own account). The SCPs, when
//   given, are attached at one level of the organization together with
//   FullAWSAccess (the default SCP AWS attaches), as AWS evaluates them.
//
//   iam-simulate does not fill in the request context from the principal (its
//   README lists that as future work). With "derive_context": true this script
//   adds what AWS would, unless `context` sets the key itself:
//     IAM principal:     aws:PrincipalArn (for a role session: the role's ARN, as
//                        AWS sets it; a path is not in a session ARN, so give the
//                        key in `context` for a role with a path), aws:PrincipalAccount,
//                        aws:PrincipalType, aws:PrincipalIsAWSService = false
//     service principal: aws:PrincipalServiceName, aws:PrincipalIsAWSService = true,
//                        and no aws:PrincipalArn / aws:PrincipalAccount (a service
//                        principal has none)
//     every request:     aws:ResourceAccount (the resource's account),
//                        aws:SecureTransport = true (the SDKs and the CLI use TLS)
//   The keys added are reported in `derived_context`.
//
// stdout: one result object (or an array, in the order of the requests):
//   {"result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied",
//    "deny_statements": [{"policy": "policy-0", "sid": "RevokeOlderSessions"}],
//    "allow_statements": [...],
//    "ignored_context_keys": [...],
//    "absent_condition_keys": ["aws:TokenIssueTime"],
//    "derived_context": {"aws:PrincipalArn": ..., ...},
//    "explanation": <the library's own analysis, as it returned it>}
//   `result` is iam-simulate's `overallResult`, unchanged. Identity policy i is
//   named "policy-i", the resource policy "resource-policy", SCP i "scp-i"; the
//   statement lists hold the matching statements of all of them. `ignored_context_keys`: context keys the library dropped as
//   not applicable to the action. `absent_condition_keys`: keys the policies'
//   conditions name that the context lacks (such a condition sees the key as
//   missing: DateLessThan on it does not match).
//
//   When the input cannot be evaluated faithfully the output is
//   {"result": "Error", "errors": {...}} and the exit status is 2: the library
//   rejects the policy, action or resource (its validation errors are passed on),
//   a policy is not JSON, or a condition (of any policy, the resource policy and
//   SCPs included) uses an operator that does not exist.
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

const parsePolicy = (p) => (typeof p === 'string' ? JSON.parse(p) : p)

// FullAWSAccess: the SCP AWS attaches to every root, OU and account by default.
const FULL_AWS_ACCESS = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }]
}

const isServicePrincipal = (principal) =>
  !principal.startsWith('arn:') && /^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$/.test(principal)

// What AWS puts in the request context about the principal and the resource
// (see the header). `resourceAccount` is the resource's account.
const derivedContext = (principal, resourceAccount) => {
  const context = { 'aws:ResourceAccount': resourceAccount, 'aws:SecureTransport': 'true' }
  if (isServicePrincipal(principal)) {
    context['aws:PrincipalServiceName'] = principal
    context['aws:PrincipalIsAWSService'] = 'true'
    return context
  }
  const parts = principal.split(':')
  if (parts.length < 6 || parts[0] !== 'arn') throw new Error(`cannot derive a context for principal ${principal}`)
  const [partition, service, account, resource] = [parts[1], parts[2], parts[4], parts.slice(5).join(':')]
  let arn = principal
  let type
  if (service === 'sts' && resource.startsWith('assumed-role/')) {
    arn = `arn:${partition}:iam::${account}:role/${resource.split('/')[1]}`
    type = 'AssumedRole'
  } else if (service === 'sts' && resource.startsWith('federated-user/')) {
    type = 'FederatedUser'
  } else if (service === 'iam' && resource === 'root') {
    type = 'Account'
  } else if (service === 'iam' && resource.startsWith('user/')) {
    type = 'User'
  } else if (service === 'iam' && resource.startsWith('role/')) {
    type = 'AssumedRole'
  } else {
    throw new Error(`cannot derive a context for principal ${principal}`)
  }
  context['aws:PrincipalArn'] = arn
  context['aws:PrincipalAccount'] = account
  context['aws:PrincipalType'] = type
  context['aws:PrincipalIsAWSService'] = 'false'
  return context
}

const evaluateOne = async (req, index) => {
  if (req === null || typeof req !== 'object') throw new Error(`request ${index} is not an object`)
  for (const field of ['action', 'resource', 'principal']) {
    if (typeof req[field] !== 'string') throw new Error(`request ${index}: "${field}" must be a string`)
  }
  const identityPolicies = (req.identity_policies ?? []).map((p, i) => ({
    name: `policy-${i}`,
    policy: parsePolicy(p)
  }))
  const resourcePolicy = req.resource_policy == null ? undefined : parsePolicy(req.resource_policy)
  const scps = (req.service_control_policies ?? []).map((p, i) => ({ name: `scp-${i}`, policy: parsePolicy(p) }))
  const conditions = [
    ...identityPolicies.map((p) => p.policy),
    ...(resourcePolicy ? [resourcePolicy] : []),
    ...scps.map((p) => p.policy)
  ].flatMap((p) => conditionsOf(p))
  const unknownOperators = [...new Set(conditions.map((c) => c.operator).filter((o) => !isKnownOperator(o)))]
  if (unknownOperators.length > 0) {
    return {
      result: 'Error',
      errors: { message: `unknown condition operator(s): ${unknownOperators.join(', ')}`, unknownOperators }
    }
  }

  const resourceAccount =
    req.resource_account ?? accountOf(req.resource) ?? accountOf(req.principal) ?? '123456789012'

  const given = req.context ?? {}
  const givenKeys = new Set(Object.keys(given).map((k) => k.toLowerCase()))
  const derived = {}
  if (req.derive_context === true) {
    for (const [key, value] of Object.entries(derivedContext(req.principal, resourceAccount))) {
      if (!givenKeys.has(key.toLowerCase())) derived[key] = value
    }
  }
  const context = { ...derived, ...given }
  const present = new Set(Object.keys(context).map((k) => k.toLowerCase()))
  const absentConditionKeys = [
    ...new Set(conditions.map((c) => c.key).filter((k) => !present.has(k.toLowerCase())))
  ].sort()

  const simulation = {
    request: {
      principal: req.principal,
      action: req.action,
      resource: { resource: req.resource, accountId: resourceAccount },
      contextVariables: context
    },
    identityPolicies,
    serviceControlPolicies:
      scps.length === 0
        ? []
        : [{ orgIdentifier: 'o-exampleorgid', policies: [{ name: 'FullAWSAccess', policy: FULL_AWS_ACCESS }, ...scps] }],
    resourceControlPolicies: [],
    ...(resourcePolicy ? { resourcePolicy } : {})
  }
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })

  if (response.resultType === 'error') {
    return { result: 'Error', errors: response.errors }
  }
  // 'single': one resource. 'wildcard': the resource had a wildcard and the
  // library ran one simulation per matching pattern; overallResult combines them.
  const results = response.resultType === 'single' ? [response.result] : response.results
  const analyses = results.map((r) => r.analysis)
  const named = (statements, name) => statementRefs(statements).map((s) => ({ ...s, policy: name }))
  const matching = (kind) =>
    analyses.flatMap((a) => [
      ...statementRefs(a?.identityAnalysis?.[kind]),
      ...named(a?.resourceAnalysis?.[kind], 'resource-policy'),
      ...(a?.scpAnalysis?.ouAnalysis ?? []).flatMap((ou) => statementRefs(ou[kind]))
    ])
  return {
    result: response.overallResult,
    deny_statements: matching('denyStatements'),
    allow_statements: matching('allowStatements'),
    ignored_context_keys: [...new Set(results.flatMap((r) => r.ignoredContextKeys ?? []))],
    absent_condition_keys: absentConditionKeys,
    derived_context: derived,
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
