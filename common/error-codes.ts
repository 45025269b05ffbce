/**
 * Every error code Palisade sends, in one table: its category (which error class carries it), its HTTP
 * status and what it means. The error classes of errors.ts take their code from here, typed by category,
 * so an unlisted code, or a code thrown with a class of another category, does not compile; the REST edge
 * and the WebSocket upgrade take their status from here. docs/errors.md is generated from this table
 * (`npm run docs:errors`), and test/integration/error-codes.test.ts fails when a code quoted in the source is not
 * listed, when a listed code is quoted nowhere, or when the committed docs are stale.
 * Not a message catalogue: a throw site writes its own message with the values that explain that case;
 * `message` here is the meaning every such case shares.
 */
import type { ErrorCategory } from './errors.js';

/** HTTP status per category; a row may name another (an edge-only answer such as 431 or 415). */
export const CATEGORY_STATUS: Readonly<Record<ErrorCategory, number>> = Object.freeze({
  'bad-parameter': 400,
  unauthenticated: 401,
  'access-denied': 403,
  'not-found': 404,
  conflict: 409,
  'too-large': 413,
  'rate-limited': 429,
  timeout: 504,
  unavailable: 503,
  connection: 502,
  protocol: 502,
  internal: 500,
  // 424 Failed Dependency: a service outside Palisade (AWS, a customer's REST API) failed or could not be
  // reached. A 4xx, because Palisade itself worked and the fix lies with that service or its settings.
  dependency: 424,
  // 422: what the request ran (a script) failed in itself; the request was fine (not 400) and Palisade worked (not
  // 5xx). The CLI exits 1, as for a playbook run that failed, not 2 ("bad input").
  'run-failed': 422,
});

export interface ErrorRow<C extends ErrorCategory = ErrorCategory> {
  readonly category: C;
  readonly status: number;
  readonly message: string;
}

const row =
  <C extends ErrorCategory>(category: C) =>
  (message: string, status: number = CATEGORY_STATUS[category]): ErrorRow<C> =>
    Object.freeze({ category, status, message });
const badParameter = row('bad-parameter');
const unauthenticated = row('unauthenticated');
const accessDenied = row('access-denied');
const notFound = row('not-found');
const conflict = row('conflict');
const tooLarge = row('too-large');
const rateLimited = row('rate-limited');
const timeout = row('timeout');
const unavailable = row('unavailable');
const connection = row('connection');
const protocol = row('protocol');
const internal = row('internal');
const dependency = row('dependency');
const runFailed = row('run-failed');

const REST = {
  ERR_BAD_REQUEST: badParameter('A field of the request is missing, unknown or out of range; the message names it.'),
  ERR_BAD_BODY: badParameter('The body is not what its content type says (bad JSON, a bad NDJSON line).'),
  ERR_BAD_URL: badParameter('The request URL cannot be parsed.'),
  ERR_BAD_HTTP: badParameter("Node's HTTP parser refused the request before any route."),
  ERR_BAD_NAME: badParameter("A name is not 1-63 lower-case letters, digits or '-' (roles: 1-32, from a letter)."),
  ERR_BAD_DURATION: badParameter('A duration is not like 30m, 24h or 7d, or over its limit (installer key: 7d).'),
  ERR_BODY_TOO_LARGE: tooLarge("The body, or an NDJSON batch's line count, exceeds the route's limit."),
  ERR_HEADERS_TOO_LARGE: tooLarge('The request line or headers exceed 16 KiB.', 431),
  ERR_REQUEST_TIMEOUT: timeout('The request line and headers did not arrive in time.', 408),
  ERR_UNSUPPORTED_MEDIA_TYPE: badParameter('The route does not accept this content type.', 415),
  ERR_NOT_FOUND: notFound('No route (or no WebSocket endpoint) at this method and path.'),
  ERR_INTERNAL: internal("A bug: the cause is in the server's log, never in the answer."),
} as const;

const ACCESS = {
  ERR_AUTH_REQUIRED: unauthenticated('No API key: send Authorization: Bearer KEY.'),
  ERR_AUTH_INVALID_KEY: unauthenticated('The API key is unknown, revoked, or its user is removed.'),
  ERR_AUTH_THROTTLED: rateLimited('Too many failed authentications from this address or IPv6 /64; see Retry-After.'),
  ERR_FORBIDDEN: accessDenied("The caller lacks the route's permission, or is another tenant's user."),
  ERR_PROFILE_NOT_FOUND: notFound('No security profile of that name in this tenant.'),
  ERR_PROFILE_EXISTS: conflict('A security profile of that name exists in this tenant.'),
  ERR_PROFILE_IN_USE: conflict('Users of this tenant carry the security profile; change them first.'),
  ERR_PROFILE_FORBIDDEN: accessDenied(
    'A user limited to domains by a security profile does not change what the whole tenant shares (domains and ' +
      'tagging, users and profiles, sites, content, connections, integrations); a user without a profile does.',
  ),
  ERR_OBFUSCATION_NOT_FOUND: notFound('No obfuscation rule of that name in this tenant.'),
  ERR_OBFUSCATION_EXISTS: conflict('An obfuscation rule of that name exists in this tenant.'),
  ERR_OBFUSCATION_KEY: badParameter(
    "The key given to reveal values is not the key of any of this tenant's obfuscation rules.",
  ),
  ERR_USER_EXISTS: conflict('A user of that name exists.'),
  ERR_USER_NOT_FOUND: notFound('No user with that name or id.'),
  ERR_USER_DISABLED: conflict('The user is removed; it can no longer get keys.'),
  ERR_USER_SELF: conflict('A user cannot remove itself.'),
  ERR_USER_SCOPE: badParameter('A user is either a customer user (tenant) or MSSP staff limited to tenants, not both.'),
  ERR_APIKEY_NOT_FOUND: notFound('No API key with that id.'),
  ERR_UNKNOWN_ROLE: badParameter('A role given to a user does not exist where the user lives (main or that tenant).'),
  ERR_ROLE_NOT_FOUND: notFound('No custom role of that name.'),
  ERR_ROLE_EXISTS: conflict('A role of that name exists (in a tenant: its own, or one shared by main).'),
  ERR_ROLE_BUILT_IN: badParameter("The name is a built-in role's."),
  ERR_ROLE_BODY: badParameter('A role is not {"permissions": […], "mainPermissions"?: […], "description"?: "…"}.'),
  ERR_ROLE_PERMISSION: badParameter('A permission in a role is not one of the permissions of its kind.'),
  ERR_ROLE_RENAME: badParameter('Roles cannot be renamed (users hold them by name); create a new one.'),
  ERR_ROLE_IN_USE: conflict('Users still hold the role.'),
  ERR_ROLE_SHARED: conflict('The role is shared to tenants; unshare it first.'),
  ERR_ROLE_READONLY: conflict('In a tenant, the role is built in or shared by main: read-only there.'),
  ERR_ROLE_CEILING: badParameter("A tenant role asks for a permission never granted to a tenant's own users."),
  ERR_ROLE_ESCALATION: accessDenied('The change would grant permissions the caller does not hold in this tenant.'),
  ERR_SIGNIN_FAILED: unauthenticated('Sign-in refused: the name, password or TOTP code is wrong (one answer for all).'),
  ERR_TOTP_REQUIRED: unauthenticated('The password was right; this user also needs a TOTP code ("totp").'),
  ERR_SESSION_INVALID: unauthenticated('The session cookie is unknown, expired or revoked: sign in again.'),
  ERR_CSRF: accessDenied('A change made with the session cookie lacks X-CSRF-Token equal to the session token.'),
  ERR_SIGNIN_BUSY: unavailable('Too many sign-ins are being checked at once; retry shortly.'),
  ERR_SIGNIN_BACKOFF: rateLimited('Too many failed sign-ins for this account in a row; wait for Retry-After.'),
  ERR_SIGNIN_CONCURRENT: rateLimited('A sign-in from this address is already being checked; retry after it.'),
  ERR_PASSWORD_WEAK: badParameter('A password is shorter than 12 characters or longer than 1024.'),
  ERR_PASSWORD_MISMATCH: badParameter('The password typed twice differs, or --password-stdin got nothing.'),
  ERR_OVERVIEW_STREAMS: rateLimited('Too many overview streams are open for this user or in total.'),
  ERR_CREDENTIALS_OTHER_USER: accessDenied("Changing another user's password or TOTP needs users:write."),
  ERR_PASSWORD_CURRENT: accessDenied('Changing your own password: the current password ("current") is wrong.'),
  ERR_PASSWORD_CURRENT_MISSING: badParameter('Changing your own password needs the current one ("current").'),
} as const;

const SIGNED_REQUESTS = {
  ERR_SIGNATURE_MISSING: accessDenied("A tenant's API was called without main's signature."),
  ERR_SIGNATURE_INVALID: accessDenied("The signature does not verify with main's key, or its claim is malformed."),
  ERR_SIGNATURE_WRONG_TENANT: accessDenied('The request was signed for another tenant.'),
  ERR_SIGNATURE_EXPIRED: accessDenied('The signed request expired, or expires implausibly far ahead.'),
  ERR_SIGNATURE_MISMATCH: accessDenied('The signed method, path or body hash differ from the request.'),
  ERR_SIGNATURE_REPLAYED: accessDenied('This signed request was already used.'),
  ERR_REPLAY_CACHE_FULL: accessDenied('Too many signed requests in flight for the replay guard; retry shortly.'),
} as const;

const AGENT_CONNECTION = {
  ERR_WIRE_VERSION: protocol('The peer speaks a protocol major this side does not; upgrade the agent (permanent).'),
  ERR_WIRE_TEXT_FRAME: protocol('A WebSocket text frame: frames are binary protobuf Envelopes.'),
  ERR_WIRE_MALFORMED: protocol('A frame is not a valid Envelope or carries no body.'),
  ERR_WIRE_BAD_JSON: protocol('A JSON payload inside a frame is not valid JSON.'),
  ERR_WIRE_FRAME_TOO_BIG: tooLarge('A frame exceeds the frame limit (WebSocket close 1009).'),
  ERR_WIRE_EXPECTED_HELLO: protocol('The first frame of an agent connection is not Hello.'),
  ERR_WIRE_EXPECTED_WELCOME: protocol('Main did not answer Hello with Welcome.'),
  ERR_WIRE_EXPECTED_ENROLL: protocol('The enrolment endpoint takes one Enroll frame.'),
  ERR_WIRE_HELLO_TIMEOUT: protocol('No Hello in time after the WebSocket opened.'),
  ERR_WIRE_IDENTITY: protocol('Hello names another agent than the client certificate (permanent).'),
  ERR_WIRE_UNEXPECTED: protocol('A frame this kind of peer may not send, or an unexpected answer.'),
  ERR_WIRE_FOREIGN_TENANT: protocol('A frame names a tenant this agent does not serve.'),
  ERR_WIRE_BAD_KIND: protocol('Enroll names no agent kind.'),
  ERR_WIRE_INTERNAL: protocol('Main failed handling a frame (a bug); the connection closes.'),
  ERR_AGENT_CERT_REQUIRED: unauthenticated('No client certificate issued by this main (permanent).'),
  ERR_AGENT_RELEASE_MISSING: unavailable(
    'This palisade has no agent release to put in a bundle (it is built on linux-x64); use --config-only.',
  ),
  ERR_DEREGISTER_UNCONFIRMED: unavailable(
    'Main did not confirm that it removed the agent (unreachable, too old, or no answer in time); remove it there.',
  ),
  ERR_AGENT_REVOKED: accessDenied('The agent was removed or its certificate is unknown; re-install it (permanent).'),
  ERR_AGENT_DUPLICATE_SESSION: conflict("A live connection holds this agent's certificate: this one is a copy."),
  ERR_DEAD_PEER: connection('Main closed a connection that sent nothing for too long, or did not answer a probe.'),
  ERR_SHUTTING_DOWN: unavailable('Main is shutting down or restarting; come back after the hinted delay.'),
  ERR_NOT_READY: unavailable(
    'Main is not ready to serve: GET /readyz names what is not (store, HTTPS listener, agent gateway).',
  ),
  ERR_HANDSHAKE_TIMEOUT: connection('The agent got no Welcome from main in time.'),
  ERR_CONNECT_CLOSED: connection('The connection to main closed before the handshake finished.'),
  ERR_MAIN_ERROR: connection('Main sent an Error frame without a code.'),
} as const;

const ENROLMENT = {
  ERR_ENROL_KEY_MALFORMED: badParameter('The enrolment key is not of the form ID.SECRET; re-install from the bundle.'),
  ERR_ENROL_KEY_UNKNOWN: accessDenied('Main does not know this enrolment key.'),
  ERR_ENROL_KEY_USED: conflict('The enrolment key was already used (and a used key cannot be revoked).'),
  ERR_ENROL_KEY_REVOKED: accessDenied('The enrolment key was revoked by an admin.'),
  ERR_ENROL_KEY_EXPIRED: accessDenied('The enrolment key expired.'),
  ERR_ENROL_KEY_MISMATCH: badParameter('The enrolment key is for another agent kind or name.'),
  ERR_ENROL_KEY_NOT_FOUND: notFound('No enrolment key with that id.'),
  ERR_ENROL_TENANT_GONE: accessDenied('The tenant an engine key was made for is gone (or renamed away).'),
  ERR_ENROL_BAD_CSR: badParameter('The CSR is not one valid PEM certificate request, or does not verify.'),
  ERR_ENROL_BOX_KEY: badParameter('An engine enrolled without its 32-byte tunnel key, or a host with one.'),
  ERR_ENROL_NO_KEY: badParameter('The agent directory holds no enrolment key; re-install with a new bundle.'),
  ERR_ENROL_REFUSED: accessDenied('Main refused the enrolment without a code.'),
  ERR_ENROL_TIMEOUT: connection('Main did not answer the enrolment in time.'),
  ERR_ENROL_CONNECT: connection('The agent cannot reach main to enrol.'),
  ERR_ENROL_CLOSED: connection('Main closed the enrolment connection without an answer.'),
  ERR_AGENT_EXISTS: conflict('An agent of that kind and name is enrolled; remove it first or pick another name.'),
  ERR_ENGINE_TENANT: badParameter('An engine bundle must name the tenant the engine serves.'),
  ERR_HOST_TENANT: badParameter('A host bundle takes no tenant or group (engines only).'),
} as const;

const INSTALLER = {
  ERR_BUNDLE_NOT_FOUND: badParameter('The bundle file does not exist.'),
  ERR_BUNDLE_INVALID: badParameter('The file is not a Palisade bundle (too large, not .tar.gz, a part missing).'),
  ERR_BUNDLE_EXPIRED: badParameter("The bundle's enrolment key expired; ask the admin for a new one."),
  ERR_AGENT_ALREADY_INSTALLED: conflict('The directory already holds an agent.'),
  ERR_AGENT_NOT_INSTALLED: badParameter('No agent config in the directory: install first.'),
  ERR_CONFIG_INVALID: badParameter('A config file is not valid JSON or breaks its schema; every problem is listed.'),
  ERR_FLAG_HOST_ONLY: badParameter('An install flag for hosts was given for an engine.'),
  ERR_FLAG_ENGINE_ONLY: badParameter('An install flag for engines was given for a host.'),
  ERR_BAD_ALLOW: badParameter('An --allow entry is not CIDR[:PORT|PORT-PORT] or HOST[:PORT|PORT-PORT].'),
  ERR_BAD_ENGINE_LISTEN: badParameter('--engine-listen is not ADDR:PORT with an IP address, or "off".'),
  ERR_BAD_ENGINE_ADVERTISE: badParameter('--engine-advertise is not HOST:PORT, or is given with --engine-listen off.'),
  ERR_BAD_MAIN_URL: badParameter('A --main-url is not https://HOST[:PORT], or is given twice.'),
  ERR_BAD_SYSLOG: badParameter('A --syslog listener is not udp:|tcp:|tls:ADDR:PORT, or a port is given twice.'),
} as const;

const MAIN_PROCESS = {
  ERR_MAIN_NOT_INITIALISED: badParameter('The data directory holds no main: run main init first.'),
  ERR_MAIN_ALREADY_INITIALISED: conflict('The data directory already holds a main.'),
  ERR_MAIN_ALREADY_RUNNING: unavailable('Another main runs on this data directory.'),
  ERR_INIT_CERT_PAIR: badParameter('--cert and --key go together.'),
  ERR_INIT_CERT_READ: badParameter('--cert or --key cannot be read.'),
  ERR_INIT_CERT_INVALID: badParameter('--cert and --key are not a matching PEM certificate and key.'),
  ERR_BAD_PORT: badParameter('A port is not a number from 0 to 65535.'),
  ERR_LISTEN: unavailable("A listener cannot bind (main's API, a host's engine port, a tunnel)."),
  ERR_SERVICE_DATA_DIR: badParameter(
    'The data directory is under /tmp or /var/tmp, which the unit hides (PrivateTmp).',
  ),
  ERR_SERVICE_USER_ROOT: badParameter('Main would run as root as a service: give --user, or chown the data directory.'),
  ERR_SERVICE_ENABLE: unavailable('The systemctl reload, enable or start of the unit install-service wrote failed.'),
  ERR_BACKUP_PASSPHRASE_FILE: badParameter(
    'The passphrase file cannot be read, is empty, or (for a backup) holds fewer than 12 characters.',
  ),
  ERR_BACKUP_OUT_EXISTS: conflict('The backup file given as --out already exists.'),
  ERR_BACKUP_OUT_WRITE: badParameter(
    'The backup file cannot be written where --out says (no such directory, no access).',
  ),
  ERR_BACKUP_MAIN_UNREACHABLE: unavailable('A main holds the data directory but does not answer on its backup socket.'),
  ERR_BACKUP_DATA_OWNER: badParameter(
    "A stopped main's data directory is backed up by an account that does not own it.",
  ),
  ERR_BACKUP_INCOMPLETE: unavailable('Main stopped sending the snapshot before its end; nothing was written.'),
  ERR_BACKUP_IN_READ: badParameter('The backup file given as --in cannot be read.'),
  ERR_BACKUP_FORMAT: badParameter('The file is not a main backup, or of a format version this release does not read.'),
  ERR_BACKUP_PASSPHRASE_WRONG: badParameter('Wrong passphrase for the backup (or its header was altered).'),
  ERR_BACKUP_DAMAGED: badParameter('The backup is damaged, truncated or altered; nothing was restored.'),
  ERR_RESTORE_TARGET_NOT_EMPTY: conflict('The data directory to restore into exists and is not empty.'),
} as const;

const AGENTS_AND_COMMANDS = {
  ERR_AGENT_NOT_FOUND: notFound('No host or engine of that name (or it was removed).'),
  ERR_HOST_NOT_FOUND: notFound('No host of that name.'),
  ERR_HOST_OFFLINE: unavailable('The host is not connected (or disconnected before answering).'),
  ERR_OUTBOX_FULL: unavailable('The agent has too many pending commands; wait for it to reconnect.'),
  ERR_COMMAND_TOO_LARGE: tooLarge("A command's args exceed the limit."),
  ERR_COMMAND_NOT_FOUND: notFound('No command with that id.'),
  ERR_COMMAND_OTHER_AGENT: badParameter('The command was sent to another agent than the one named.'),
  ERR_COMMAND_UNKNOWN: badParameter('The receiver has no command of that name.'),
  ERR_COMMAND_ITEM_TYPE: badParameter(
    'A write command names a content item of another type (list:share takes a list, playbook:publish a playbook).',
  ),
  ERR_SHARE_FAILED: unavailable("A write command's share did not reach this tenant; the message says why."),
  ERR_COMMAND_EXPIRED: timeout('The agent did not run the command before its deadline.'),
  ERR_COMMAND_FAILED: internal('The command failed on the agent without a code of its own.'),
  ERR_BAD_ARGS: badParameter("An engine command's args are missing or malformed; the message names the field."),
  ERR_HTTP_FAILED: connection("An engine's http.request could not reach its URL."),
  ERR_HTTP_TIMEOUT: timeout("An engine's http.request got no answer in time."),
  ERR_RELAY_TIMEOUT: timeout("No answer from the host (or from a fan-out's tenant) before the deadline."),
  ERR_RELAY_FAILED: unavailable('A request relayed to a tenant failed without a code of its own.'),
  ERR_RELAY_PATH: badParameter('A relayed path does not start with /api/v1/.'),
  ERR_RELAY_TENANT: badParameter('A relayed request names another tenant than its frame.'),
  ERR_RELAY_REPLY_TOO_BIG: unavailable("The tenant's reply exceeds the relay limit; page the request."),
} as const;

const TENANTS = {
  ERR_TENANT_NOT_FOUND: notFound('No tenant of that name (or not one the caller may reach).'),
  ERR_TENANT_EXISTS: conflict('A tenant of that name exists (on main, or its directory on the host).'),
  ERR_TENANT_BUSY: unavailable('The tenant is being created, moved or removed; retry when it runs.'),
  ERR_TENANT_NOT_MOVABLE: conflict(
    'Only a running tenant can be moved; this one is stopped, or being created, moved or removed.',
  ),
  ERR_TENANT_NOT_RUNNING: unavailable("The tenant's process is not running on its host."),
  ERR_TENANT_STOPPED: unavailable("An admin stopped the tenant ('palisade tenant start NAME' brings it back)."),
  ERR_TENANT_START: unavailable("The tenant's process did not become ready."),
  ERR_TENANT_CREATE: unavailable('The host failed to create the tenant without a code of its own.'),
  ERR_TENANT_REMOVE: unavailable('The host failed to remove the tenant without a code of its own.'),
  ERR_TENANT_MOVE_FAILED: unavailable('The move failed; the tenant runs where it was if it can (409: target refused).'),
  ERR_TENANT_CONFIG: badParameter("A tenant's tenant.json is not a regular file."),
  ERR_TENANT_USER: unavailable("The host could not create or remove the tenant's OS user."),
  ERR_TENANT_CHORE: unavailable("A chore the host runs as the tenant's user in its directory failed."),
  ERR_TENANT_POOL_EMPTY: unavailable(
    "Every tenant user install.sh made for this host is taken (install.sh's --tenant-users).",
  ),
  ERR_TENANT_TIMEOUT: unavailable('The tenant did not answer its host in time.'),
  ERR_TENANT_UNREACHABLE: unavailable("The tenant's API does not answer its host."),
  ERR_TENANT_BAD_REPLY: protocol('A tenant answered a fan-out with something that is not what was asked.'),
  ERR_FANOUT_REPLY_TOO_LARGE: tooLarge(
    "A tenant's answer to an integration fan-out is over the per-tenant cap: run the command on that tenant alone.",
  ),
  ERR_FANOUT_ANSWER_FULL: tooLarge(
    "A fan-out's answer reached its cap before this tenant's result: select fewer tenants at a time.",
  ),
  ERR_HOST_BUDGET: unavailable('The host lacks the memory or disk the tenant needs.'),
  ERR_NO_TENANT_PORT: unavailable('The host has no free tenant port.'),
  ERR_NO_MAIN_KEY: unavailable("The host does not know main's signing key yet (it has not connected)."),
  ERR_MOVE_SAME_HOST: badParameter('The tenant already runs on that host.'),
  ERR_TRANSFER_KEY: badParameter('A transfer key is not a base64 X25519 public key.'),
  ERR_TRANSFER_STATE: protocol('No transfer of that tenant is in progress.'),
  ERR_TRANSFER_ORDER: protocol('A snapshot chunk arrived out of order.'),
  ERR_TRANSFER_CHECKSUM: badParameter('A snapshot chunk or the whole snapshot arrived damaged.'),
  ERR_TRANSFER_ARCHIVE: badParameter('The snapshot is not a readable archive, or holds no tenant.json.'),
  ERR_TRANSFER_ENTRY_TYPE: badParameter('The snapshot holds a link, device or the like; nothing is kept.'),
  ERR_TRANSFER_ENTRY_PATH: badParameter("The snapshot holds a path outside the tenant's directory; nothing is kept."),
  ERR_TRANSFER_ABORTED: conflict('Main aborted the move while the target unpacked it.'),
} as const;

const TENANT_DATA = {
  ERR_INCIDENT_NOT_FOUND: notFound('No incident with that id in this tenant.'),
  ERR_INCIDENT_CLOSED: badParameter('The incident is closed; reopening is not supported.'),
  ERR_INDICATOR_NOT_FOUND: notFound('No indicator of that type and value in this tenant.'),
  ERR_CONTENT_NOT_FOUND: notFound('No content item with that id.'),
  ERR_CONTENT_VERSION_NOT_FOUND: notFound('The content item has no such version.'),
  ERR_CONTENT_NOT_PUBLISHED: conflict('The content item has no published version; publish it first.'),
  ERR_CONTENT_SHARED_READONLY: accessDenied('The item is shared by main: read-only in the tenant.'),
  ERR_CONTENT_PROPAGATION_ONLY: accessDenied("Shared content is written only by main's content propagation."),
  ERR_CONTENT_NAME_TAKEN: conflict('A shared script or playbook has that name; playbooks find them by name.'),
  ERR_CONTENT_RUNNABLE_FORBIDDEN: accessDenied(
    "Local scripts and playbooks run with the playbook runner's permissions: writing them needs playbooks:write.",
  ),
  ERR_CONTENT_ROLE_LOCAL: badParameter("A tenant's own roles are made with POST /api/v1/roles, not as content."),
  ERR_SEARCH_TOO_BROAD: badParameter('An indicator search names none of value, type or reputation.'),
  ERR_SELECTOR_CONFLICT: badParameter('Give tenants or labels, not both.'),
  ERR_BAD_CURSOR: badParameter('The cursor is not the "next" of a previous page.'),
  ERR_SITE_NOT_FOUND: notFound('No site of that name in this tenant.'),
  ERR_SITE_EXISTS: conflict('A site of that name exists in this tenant.'),
  ERR_SITE_LIMIT: conflict('The tenant holds its maximum of sites.'),
  ERR_SITE_INACTIVE: badParameter('The incident names a site this tenant does not have, or one that is inactive.'),
  ERR_SITE_CONFIRM: conflict(
    'Deactivating a site removes its data: confirm it (--yes, or {"confirm": true}); the message counts what would go.',
  ),
} as const;

const CONNECTIONS = {
  ERR_CONNECTION_NOT_FOUND: notFound('No connection of that name in this tenant.'),
  ERR_CONNECTION_EXISTS: conflict('A connection of that name exists in this tenant.'),
  ERR_CONNECTION_TYPE: badParameter('The connection type is not aws or http.'),
  ERR_CONNECTION_SETTING: badParameter(
    'A setting is unknown for its type, not settable, missing, or not of its form; the message names it.',
  ),
  ERR_CONNECTION_SECRET: badParameter(
    'The secret is empty, too large, given twice, missing where the settings need one, or given where they take none.',
  ),
  ERR_CONNECTION_SEALED: badParameter("A sealedSecret does not open with this tenant's key for this connection."),
  ERR_CONNECTION_TENANT_KEY: accessDenied(
    "The tenant answered (through its host) with a key that is not main's record of it: no secret is sealed to it.",
  ),
  ERR_CONNECTION_UNSEALABLE: internal("A stored secret does not open with the tenant's key: its store was altered."),
  // Connections authored on main as content, with a scope (docs/connections.md#scoped-connections).
  ERR_CONNECTION_SCOPE: badParameter('A scope is not global, region:R, tenant:T or site:T/S.'),
  ERR_CONNECTION_SCOPE_UNCHECKED: unavailable(
    "A site scope's tenant cannot be asked whether it has that site (stopped, busy, its host offline); retry later.",
  ),
  ERR_CONNECTION_CONTENT: badParameter('The body of a connection item is not {type, fields, scope, sealed?}.'),
  ERR_CONNECTION_UNRESOLVED: notFound('No connection of that name is valid for this tenant (and site).'),
  ERR_CONTENT_CONNECTION_LOCAL: badParameter("A tenant's own connections are not content: POST /api/v1/connections."),
  ERR_CLI_REGION: badParameter('The tenant set-region command takes a region or --none, not both.'),
  ERR_CLI_SECRET_FILE: badParameter('The --secret-file (or stdin, for --secret-stdin) cannot be read.'),
} as const;

const TUNNELS = {
  ERR_BAD_LISTEN: badParameter("A tunnel's listen address is not ADDR:PORT (outbound: loopback only)."),
  ERR_BAD_TARGET: badParameter("A tunnel's target is not HOST:PORT, or a link-local, metadata or reserved address."),
  ERR_TUNNEL_NOT_FOUND: notFound('No tunnel with that id.'),
  ERR_TUNNEL_UNCONFIRMED: unavailable('The host did not confirm the new tunnel listener.'),
  ERR_NO_ENGINE: unavailable('No engine of the tenant is connected.'),
  ERR_ENGINE_OFFLINE: unavailable('The named engine has no session with the tenant.'),
  ERR_ENGINE_GROUP_OFFLINE: unavailable(
    "No engine of the group the work is bound to has a session with the tenant (other groups' engines are not used).",
  ),
  ERR_ENGINE_GROUP_UNKNOWN: notFound(
    'No engine of the group named has held a session with the tenant since it started.',
  ),
  ERR_ENGINE_NOT_IN_GROUP: badParameter('The engine named is not an engine of the group named with it.'),
  ERR_BAD_RUN_ON: badParameter('A run-on target is not engine:NAME or group:NAME.'),
  ERR_ENGINE_TIMEOUT: timeout('The engine did not answer a command over its session in time.'),
  ERR_ENGINE_COMMAND_TOO_LARGE: tooLarge(
    'An engine command or its answer would exceed the sealed frame limit; it was not sent and the session stays up.',
  ),
  ERR_SESSION_CLOSED: unavailable('The engine session (and every stream in it) is closed.'),
  ERR_SYSLOG_FRAME: protocol(
    'A syslog TCP/TLS sender sent a malformed octet count (RFC 6587); that connection closes.',
  ),
  ERR_EVENTS_BATCH: badParameter(
    "An engine's events.batch is malformed (seq, records, a record's fields, or a binary batch's head, origins or columns).",
  ),
  ERR_EVENTS_UNAVAILABLE: unavailable(
    "The tenant cannot store an engine's events now; the engine keeps and re-sends them.",
  ),
  ERR_TUNNEL_CROSS_TENANT: accessDenied('An inbound tunnel leads to an address reserved on the host.'),
  ERR_TUNNEL_TARGET_DENIED: accessDenied("An inbound tunnel's target resolves to a link-local or metadata address."),
  ERR_TUNNEL_TARGET: accessDenied("A stream's target is not HOST:PORT."),
  ERR_TUNNEL_DNS: accessDenied("A stream's target name does not resolve."),
  ERR_TUNNEL_NOT_ALLOWED: accessDenied("The destination is not in the engine's allow-list."),
  ERR_TUNNEL_DIAL: connection('The far end of a stream could not dial its target.'),
  ERR_TUNNEL_DIAL_TIMEOUT: timeout('The target of a stream did not answer the dial in time.'),
  ERR_TUNNEL_HELLO: protocol('A handshake record is malformed or not the one expected.'),
  ERR_TUNNEL_HELLO_STALE: accessDenied('The engine hello is too old or from the future (clock skew?).'),
  ERR_TUNNEL_HELLO_REPLAY: accessDenied('This engine hello was already used.'),
  ERR_TUNNEL_ENGINE_UNKNOWN: accessDenied("The engine key is not enrolled here, or main's statement for it fails."),
  ERR_TUNNEL_ENGINE_AUTH: accessDenied("The engine hello does not open with the engine's enrolled key."),
  ERR_TUNNEL_ENGINE_REVOKED: accessDenied('Main revoked the engine; its session ends.'),
  ERR_TUNNEL_TENANT_AUTH: accessDenied("The peer does not hold the tenant's secret key."),
  ERR_TUNNEL_TENANT_IDENTITY: accessDenied('The engine was enrolled for an earlier tenant of that name.'),
  ERR_TUNNEL_STATEMENT_EXPIRED: accessDenied("Main's statement for an engine expired unrenewed; the session ends."),
  ERR_TUNNEL_RENEWAL: protocol('A statement renewal names another engine or key.'),
  ERR_TUNNEL_RECORD: protocol('A sealed record is short, fails authentication, or is unexpected here.'),
  ERR_TUNNEL_REKEY: protocol('A session sealed 2^53 records; it must be replaced (a nonce is never reused).'),
  ERR_TUNNEL_SEAL: protocol('Sealing a record failed.'),
  ERR_TUNNEL_HANDSHAKE_TIMEOUT: timeout('An engine got no tunnel session in time: the tenant is down or refused it.'),
  ERR_TUNNEL_FLOOD: rateLimited('Main cut off an engine that sent more than it could relay; come back in 30 s.'),
  ERR_TUNNEL_BACKLOG: rateLimited('Main cut off an engine that does not read its tunnel records; come back in 30 s.'),
  ERR_STREAM_LIMIT: protocol('A session holds its maximum of streams.'),
  ERR_STREAM_ID: protocol('The peer opened a stream outside its id space, or twice.'),
  ERR_STREAM_WINDOW: protocol("The peer's stream window differs from ours."),
  ERR_STREAM_FLOW: protocol('The peer sent more than its flow-control credit.'),
  ERR_STREAM_REFUSED: accessDenied('The far end refused the stream (its target is not allowed).'),
  ERR_STREAM_RESET: protocol('The peer reset the stream without a code.'),
  ERR_STREAM_CLOSED: protocol('The stream is closed.'),
  ERR_CONNECTION_STATE: internal(
    "A bug: an agent's connection to main took a transition its state table does not allow.",
  ),
  ERR_ENGINE_STATE: internal("A bug: the engine's tunnel session took a transition its state table does not allow."),
  ERR_NATIVE_AEAD_ARGS: internal('The native AEAD addon was called with wrong arguments (a bug).'),
} as const;

/** Why a host's engine port closed a direct connection: counted in its refusal summary, never told to the prober. */
const DIRECT_PATH = {
  ERR_DIRECT_BUSY: unavailable('Too many direct connections are waiting for their preamble.'),
  ERR_DIRECT_RATE: rateLimited('Too many direct connections from this source (an IPv6 /64 counts as one).'),
  ERR_DIRECT_PREAMBLE: protocol("The preamble is not a Palisade engine's, or is malformed or too large."),
  ERR_DIRECT_PREAMBLE_TIMEOUT: timeout('The preamble did not arrive in time.'),
  ERR_DIRECT_RECORD_SIZE: tooLarge('A direct-path record is empty or larger than allowed.'),
  ERR_DIRECT_NO_MAIN_KEY: unavailable("The host does not know main's key yet."),
  ERR_DIRECT_TENANT_UNKNOWN: accessDenied('The preamble (or a renewal) names a tenant not served here.'),
  ERR_DIRECT_TENANT_DOWN: unavailable("The tenant's process could not take the connection."),
  ERR_DIRECT_ENGINE_REVOKED: accessDenied('Main revoked the engine.'),
  ERR_DIRECT_STATEMENT: accessDenied("Main's statement in the preamble does not verify."),
  ERR_DIRECT_STATEMENT_EXPIRED: accessDenied("Main's statement in the preamble expired, or expires too far ahead."),
} as const;

const AGENT_UPGRADES = {
  ERR_RELEASE_INVALID: badParameter(
    'The archive is not an agent release: not .tar.gz, no release.json at its root, or a bad version.',
  ),
  ERR_RELEASE_EXISTS: conflict('Main already holds another archive under that release version.'),
  ERR_RELEASE_NOT_FOUND: notFound('Main holds no agent release of that version.'),
  ERR_RELEASE_DOWNLOAD: connection('The agent could not fetch the release from main.'),
  ERR_RELEASE_DIGEST: accessDenied(
    "The fetched release's size or SHA-256 is not what main signed: nothing is swapped.",
  ),
  ERR_RELEASE_SIGNATURE: accessDenied("Main's signature on the release does not verify: nothing is swapped."),
  ERR_UPGRADE_UNSUPPORTED: badParameter(
    'The agent is not run by the launcher of an installed release: it cannot upgrade itself.',
  ),
  ERR_UPGRADE_PENDING: conflict('The agent is already trying another version; wait for it to commit or roll back.'),
  ERR_UPGRADE_NO_AGENTS: badParameter('The upgrade selects no agent (ring, names).'),
  ERR_UPGRADE_ROLLED_BACK: conflict('That upgrade attempt already ran on the agent and rolled back; start a new one.'),
} as const;

/**
 * AWS integration (agent/integrations/aws/). A caller's problem (settings, keys, trust policy, permissions) is a 4xx;
 * AWS failing, or the way to it, is a dependency failure (424): Palisade worked, the service outside it did not.
 */
const AWS = {
  ERR_AWS_CONFIG: badParameter(
    "An AWS connection's setting is missing, malformed or out of range; the message names it.",
  ),
  ERR_AWS_REGION: badParameter('The AWS region is missing, not a region name, or its endpoint does not resolve.'),
  ERR_AWS_ARGS: badParameter("An AWS command's args break its schema; the message names the field."),
  ERR_AWS_REQUEST: badParameter('AWS refused the request as invalid (its code is in the message).'),
  ERR_AWS_RESULT_TOO_LARGE: badParameter(
    "An AWS command's answer is larger than a result may be (512 KiB of JSON): ask for smaller pages (maxResults).",
  ),
  ERR_AWS_KEYS: accessDenied('AWS does not know the access key id, or the secret does not match it.'),
  ERR_AWS_TOKEN_EXPIRED: accessDenied(
    "The session token (SECRET@@@TOKEN, or an instance role's) expired or is invalid.",
  ),
  ERR_AWS_ASSUME_ROLE_DENIED: accessDenied(
    "STS refused AssumeRole: the role's trust policy does not admit this caller or ExternalId.",
  ),
  ERR_AWS_ACCESS_DENIED: accessDenied('The AWS identity lacks the IAM permission for the call.'),
  ERR_INTEGRATION_TARGET_REFUSED: accessDenied(
    "An integration would connect from the MSSP's side to instance metadata, a link-local or unspecified address, " +
      "or the host itself (loopback, its own addresses) at an IP:PORT the host's integrationLoopbackAllow does not list.",
  ),
  ERR_AWS_INSTANCE_ROLE_REFUSED: accessDenied(
    "A connection without keys would use the host's instance role; only an instance run on an engine may.",
  ),
  ERR_AWS_IMDS_UNREACHABLE: badParameter(
    'No keys are set and no instance role answers over IMDSv2 (not on EC2, no role, or IMDS blocked).',
  ),
  ERR_AWS_UNREACHABLE: dependency('The AWS endpoint cannot be reached (DNS, refused, reset, TLS).'),
  ERR_AWS_TIMEOUT: dependency("AWS did not answer within the connection's timeoutMs."),
  ERR_AWS_THROTTLED: rateLimited('AWS throttled the call through every attempt; retry later or raise maxAttempts.'),
  ERR_AWS_SERVICE: dependency('AWS answered with a server error through every attempt.'),
} as const;

/** Integration definitions (content of type integration) and a tenant's instances of them (docs/integrations.md). */
const INTEGRATIONS = {
  ERR_INTEGRATION_DEFINITION: badParameter(
    "An integration definition's body breaks its schema (or a shared one no longer parses); the message names the field.",
  ),
  ERR_INTEGRATION_UNKNOWN: badParameter('No built-in or shared integration of that name reaches this tenant.'),
  ERR_INTEGRATION_NOT_FOUND: notFound('No integration instance of that name in this tenant.'),
  ERR_INTEGRATION_EXISTS: conflict('An integration instance of that name exists in this tenant.'),
  ERR_INTEGRATION_CONNECTION: badParameter("The instance's connection is missing or of another type than it needs."),
  ERR_INTEGRATION_ARGS: badParameter("A command's args break its argument schema; the message names the field."),
  ERR_PLAYBOOK_INVALID: badParameter(
    "A playbook's body breaks its format (docs/playbooks.md); the message names the task.",
  ),
  ERR_PLAYBOOK_DEPENDENCY: badParameter(
    "A playbook's task names a library item several items share, or its sub-playbooks call each other; name it by id.",
  ),
  ERR_PLAYBOOK_NOT_FOUND: notFound('No playbook of that content id or name in this tenant.'),
  ERR_PLAYBOOK_AMBIGUOUS: badParameter('Several playbooks in this tenant have that name; give the content id.'),
  ERR_PLAYBOOK_INPUTS: badParameter("A run's inputs miss a required input or name one the playbook does not declare."),
  ERR_PLAYBOOK_DEPTH: badParameter('A sub-playbook calls one of its callers, or nests deeper than the limit.'),
  ERR_PLAYBOOK_FORBIDDEN: accessDenied(
    "The playbook calls integrations or scripts and its run's starter lacks integrations:run.",
  ),
  ERR_PLAYBOOK_OUTPUT_TOO_LARGE: tooLarge(
    "A task's output (an integration's answer, a manual task's data) is more JSON than a run keeps (256 KiB).",
  ),
  ERR_PLAYBOOK_BUDGET: badParameter(
    'A run and its sub-playbooks started more sub-playbook runs (50) or tasks (1 000) than one run may.',
  ),
  ERR_PLAYBOOK_RUN_NOT_FOUND: notFound('No playbook run with that id in this tenant.'),
  ERR_PLAYBOOK_TASK_NOT_FOUND: notFound("The run's playbook has no task of that id, or the run has not started it."),
  ERR_PLAYBOOK_TASK_STATE: conflict(
    'The task is not waiting for an analyst or interrupted, so it cannot be completed or retried.',
  ),
  ERR_RULE_INVALID: badParameter(
    "An automation rule's body breaks its format (docs/playbooks.md#automation-rules); the message names the field.",
  ),
  ERR_CORRELATION_RULE_INVALID: badParameter(
    "A correlation rule's body breaks its format (docs/events.md#correlation-rules); the message names the field.",
  ),
  ERR_RULE_NOT_FOUND: notFound('No automation rule of that content id or name in this tenant.'),
  ERR_RULE_AMBIGUOUS: badParameter('Several automation rules in this tenant have that name; give the content id.'),
  ERR_PLAYBOOK_WAIT_TIMEOUT: timeout('The run was still running when `playbooks run --wait` reached its timeout.'),
  ERR_INTEGRATION_HTTP_UNREACHABLE: dependency('The http integration cannot reach its base URL (DNS, refused, TLS).'),
  ERR_INTEGRATION_HTTP_TIMEOUT: dependency("The http integration's service did not answer within timeoutMs."),
  ERR_INTEGRATION_HTTP_TOO_LARGE: dependency("The http integration's service answered more than the response cap."),
  ERR_INTEGRATION_RESULT_TOO_LARGE: badParameter(
    "An http integration's result is larger than a result may be (512 KiB of JSON, escaping included): ask for less.",
  ),
  ERR_INTEGRATION_WRITE_IN_FANOUT: accessDenied(
    "Across tenants (and when fetching) only read-only commands run; this one's definition may write.",
  ),
  ERR_INTEGRATION_FETCH_UNSUPPORTED: badParameter(
    'The integration declares no fetch (what to call and how to read items), so its instances cannot fetch incidents.',
  ),
  ERR_INTEGRATION_FETCH_OFF: badParameter('The instance was not created with fetchIncidents, so it does not fetch.'),
  ERR_INTEGRATION_FETCH_ITEMS: dependency(
    "The source's answer holds no list of items where the definition says, or an item has no usable id.",
  ),
} as const;

/** Content items of type script, run in a V8 isolate inside the tenant (docs/scripts.md). */
const SCRIPTS = {
  ERR_SCRIPT_SYNTAX: badParameter('The script does not compile; the message names the line (and column).'),
  ERR_SCRIPT_ERROR: runFailed(
    "The script threw or rejected, or handed the API a value that is not JSON; the message is the script's, with its line.",
  ),
  ERR_SCRIPT_TIMEOUT: runFailed('The script ran past its timeoutMs (wall clock) and was stopped.'),
  ERR_SCRIPT_MEMORY: runFailed('The script went past its memoryMb and its isolate was disposed.'),
  ERR_SCRIPT_RESULT_TOO_LARGE: tooLarge("The script's result is more JSON than a run may return (256 KiB)."),
  ERR_SCRIPT_ARGS_TOO_LARGE: tooLarge('A palisade.* call of a script carried more than 256 KiB of JSON arguments.'),
  ERR_SCRIPT_CONTEXT_TOO_LARGE: tooLarge(
    "A script's context.set would make the run's context more than 1 MiB of JSON.",
  ),
  ERR_SCRIPT_CALLS_EXCEEDED: tooLarge('A script made more integration calls than one run may (100).'),
  ERR_SCRIPT_LIMITS: badParameter('A limit (timeoutMs or memoryMb) is out of range; the message gives the range.'),
  ERR_SCRIPT_BUSY: unavailable(
    'This tenant runs as many scripts (or script memory) at once as it may, or a queued run waited too long; retry.',
  ),
  ERR_SCRIPT_NOT_FOUND: notFound('No content item of type script with that id or name in this tenant.'),
  ERR_SCRIPT_UNAVAILABLE: unavailable(
    'The script sandbox cannot start here (its native addon does not load, or the process lacks --no-node-snapshot).',
  ),
} as const;

const ADMIN_CLI = {
  ERR_USAGE: badParameter('The command line does not parse (unknown verb or flag, missing argument).'),
  ERR_CLI_NO_URL: badParameter("Main's URL is unknown: set PALISADE_URL or pass --url."),
  ERR_CLI_BAD_URL: badParameter('The main URL is not https://HOST:PORT.'),
  ERR_CLI_NO_API_KEY: badParameter('The API key is unknown: set PALISADE_API_KEY or pass --api-key-file.'),
  ERR_CLI_API_KEY_TWICE: badParameter('Give --api-key or --api-key-file, not both.'),
  ERR_CLI_BAD_API_KEY_FILE: badParameter('The --api-key-file cannot be read or holds no key.'),
  ERR_CLI_BAD_CA: badParameter('The CA certificate file cannot be read.'),
  ERR_CLI_BAD_FILE: badParameter('A --file, --body-file or --incident-file cannot be read or parsed.'),
  ERR_CLI_BAD_ARGS: badParameter('--args is not a JSON object.'),
  ERR_CLI_BAD_JSON: badParameter('A flag that takes a JSON value (--input) does not parse as JSON.'),
  ERR_CLI_BAD_NUMBER: badParameter('A numeric flag is not a whole number in its range; the message says which.'),
  ERR_CLI_BAD_CHOICE: badParameter('A flag is not one of its allowed values.'),
  ERR_CLI_BAD_LIST: badParameter('A list flag names nothing.'),
  ERR_CLI_BODY_TWICE: badParameter('Give --body or --body-file, not both.'),
  ERR_CLI_MISSING: badParameter('A required flag is missing.'),
  ERR_CLI_NOTHING: badParameter('An update names nothing to change.'),
  ERR_CLI_SELECTOR: badParameter('Give --tenants or --labels to choose where the command runs.'),
  ERR_CLI_TENANT_ROLE: badParameter('A flag for roles on main was given with a tenant role.'),
  ERR_CLI_LINE_TOO_LONG: badParameter('An incident line of the import file exceeds the batch limit.'),
  ERR_CLI_TIMEOUT: connection('Main did not answer in time.'),
  ERR_CLI_CONNECT: connection('Main cannot be reached.'),
  ERR_IMPORT_STOPPED: internal('An import stopped for a reason without a code; the message says where to resume.'),
  ERR_DEMO_START: unavailable('A process of the demo did not get ready.'),
} as const;

const EVENTS = {
  ERR_EVENT_NAME: badParameter('A domain, custom property, log source or log source group name is not of its form.'),
  ERR_EVENT_BATCH: badParameter('A syslog batch handed to the event pipeline is malformed (engine, seq, records).'),
  ERR_PROPERTY_REGEX: badParameter(
    'A custom property regex is too long, or does not compile in RE2 syntax (no backreferences or lookaround).',
  ),
  ERR_PROPERTY_NOT_FOUND: notFound('No custom property of that name in this tenant.'),
  ERR_PROPERTY_EXISTS: conflict('A custom property of that name exists already in this tenant.'),
  ERR_PROPERTY_IN_USE: conflict('A domain mapping uses this custom property; unmap it first.'),
  ERR_DOMAIN_NOT_FOUND: notFound('No domain of that name in this tenant.'),
  ERR_DOMAIN_EXISTS: conflict('A domain of that name exists already in this tenant.'),
  ERR_DOMAIN_DEFAULT: badParameter('The Default Domain cannot be removed or mapped: it takes what no rule claims.'),
  ERR_DOMAIN_MAPPED: conflict('That log source, group, engine, flow source, VLAN or property value has a domain.'),
  ERR_DOMAIN_IN_USE: conflict('A security profile names the domain; change or remove the profile first.'),
  ERR_MAPPING_NOT_FOUND: notFound('The domain has no such mapping.'),
  ERR_LOG_SOURCE_NOT_FOUND: notFound('No log source of that name in this tenant.'),
  ERR_CLI_BAD_TIME: badParameter('A time flag (--from, --to) is not an ISO 8601 time.'),
  ERR_EVENT_CONFIG_FULL: conflict('The tenant holds the most domains, properties, mappings or log sources it may.'),
} as const;

/** The table in sections, as docs/errors.md shows it. */
export const ERROR_SECTIONS = Object.freeze({
  'REST requests': REST,
  'Users, keys and roles': ACCESS,
  'Requests main signs for a tenant': SIGNED_REQUESTS,
  'Agent connection (WebSocket to main)': AGENT_CONNECTION,
  Enrolment: ENROLMENT,
  'Installer and agent config': INSTALLER,
  'main init and start': MAIN_PROCESS,
  'Agents, commands and relays': AGENTS_AND_COMMANDS,
  'Tenants: lifecycle and moves': TENANTS,
  'Tenant data, content and search': TENANT_DATA,
  Connections: CONNECTIONS,
  'Tunnels and streams': TUNNELS,
  'Direct path (engine to host)': DIRECT_PATH,
  'Agent upgrades': AGENT_UPGRADES,
  'AWS integration': AWS,
  Integrations: INTEGRATIONS,
  Scripts: SCRIPTS,
  'Admin CLI': ADMIN_CLI,
  'Events and domains': EVENTS,
});

export const ERROR_CODES = Object.freeze({
  ...REST,
  ...ACCESS,
  ...SIGNED_REQUESTS,
  ...AGENT_CONNECTION,
  ...ENROLMENT,
  ...INSTALLER,
  ...MAIN_PROCESS,
  ...AGENTS_AND_COMMANDS,
  ...TENANTS,
  ...TENANT_DATA,
  ...CONNECTIONS,
  ...TUNNELS,
  ...DIRECT_PATH,
  ...AGENT_UPGRADES,
  ...AWS,
  ...INTEGRATIONS,
  ...SCRIPTS,
  ...ADMIN_CLI,
  ...EVENTS,
});

/**
 * Codes made from a status rather than listed one by one: an HTTP answer without our error body. The
 * key is the prefix the source writes in a template literal; the status follows it.
 */
export const ERROR_CODE_FAMILIES: Readonly<Record<string, string>> = Object.freeze({
  ERR_HTTP_: 'An HTTP answer of that status without a Palisade error body (a fastify error of its own, a proxy).',
  ERR_TENANT_HTTP_: 'In a fan-out, a tenant answered that status without a Palisade error body.',
});

export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes whose row has category C: what the error class of that category accepts. */
export type CodeOf<C extends ErrorCategory> = {
  [K in ErrorCode]: (typeof ERROR_CODES)[K]['category'] extends C ? K : never;
}[ErrorCode];

/**
 * A code another Palisade process sent (an Error frame, a command result, a REST answer) or a family code
 * made from its status. Passed on as it is, not checked against this table: a peer of another release may
 * send a code this one retired. Made only with peerCode(), so every such place is one search away.
 */
export type PeerCode = string & { readonly peerCode: unique symbol };
export const peerCode = (code: string): PeerCode => code as PeerCode;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/**
 * The HTTP status of an error: its code's row, unless the error carries another category than the row
 * (a peer's code re-wrapped as unavailable by the relay, ERR_TENANT_MOVE_FAILED taking its cause's),
 * then that category's.
 */
export function httpStatusOf(e: { code: string; category: ErrorCategory }): number {
  const r: ErrorRow | undefined = isErrorCode(e.code) ? ERROR_CODES[e.code] : undefined;
  return r && r.category === e.category ? r.status : CATEGORY_STATUS[e.category];
}
