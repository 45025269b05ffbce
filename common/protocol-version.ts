/**
 * Wire protocol version. Bump minor for additive changes (new optional fields/messages), major for
 * anything an old peer would misread. Peers check capabilities with `minor >= N`, never product versions.
 *
 * History:
 *   1.0  2026-11-24  first version: Hello/Welcome, Enroll, Command/Result, Heartbeat, Error, Stream*.
 *   1.1  2026-11-25  direct engine ⇄ host tunnel path: Hello.engine_endpoint, Tunnel.direct_ok, Tunnel.direct
 *                    (additive: an old host announces nothing, an old engine never asks, main then relays).
 *   1.2  2026-12-06  bounded relay: an empty Tunnel record closes a relayed session from either end (an old
 *                    engine ignores it), Tunnel.flow (host → main; a host sends it only to a main ≥ 1.2).
 *                    Engine revocation reaches the data plane: Welcome.revoked_engines, EngineRevocations (main →
 *                    host); direct sessions bound to main's statement: Tunnel.direct_renew, TunnelDirect.ttl_ms and
 *                    the renewal record. Main's statements now name the tenant's public key (its identity), so
 *                    hosts and tenants must run 1.2 with a 1.2 main; an engine before 1.2 never renews, and its
 *                    direct session ends (and is set up again) each time its statement expires.
 *   1.3  2026-12-06  every wire has a schema. Relayed requests as bytes: a tenant.request carries Command.relay
 *                    (RelayRequest) and is answered with Result.relay (RelayReply), bodies as bytes instead of
 *                    base64 in JSON args and values; a 1.2 host refuses a 1.3 main's relayed request
 *                    (ERR_RELAY_TENANT) and a 1.3 host a 1.2 main's (ERR_WIRE_MALFORMED). The tunnel's
 *                    handshake records (TunnelEngineHello, TunnelTenantHello), the direct path's preamble
 *                    (version byte 0x02, then TunnelDirectStatement: main's TunnelDirect as it came) and renewal
 *                    records are protobuf instead of JSON with base64 fields. Not compatible: main, hosts,
 *                    tenants and engines all run 1.3 together (a 1.2 engine's preamble is refused at its
 *                    version byte, its hello does not parse).
 *   1.4  2026-12-06  tenant lifecycle: tenant.stop and tenant.start (durable host commands), and the host's
 *                    tenant.status Event names each tenant's cpuPercent, rssBytes and memoryMb and is sent with
 *                    every heartbeat too. Additive: a 1.3 host answers the new commands as unknown (the stop or
 *                    start fails with its code), a 1.3 main ignores the new fields.
 *   1.5  2026-12-06  an agent deregisters itself (uninstall.sh): the agent.deregister Event (agent → main, no
 *                    data); main revokes it as `hosts|engines remove` would and closes with ERR_AGENT_REVOKED,
 *                    which is the agent's confirmation. An agent sends it only to a main ≥ 1.5.
 *   1.6  2026-12-06  agent upgrades: the durable agent.upgrade command (to hosts and engines, args in
 *                    common/agent-release.ts) and Hello.last_upgrade (UpgradeReport: how the agent's last
 *                    upgrade ended); Hello.agent_version now names the release the agent runs. Additive: a 1.5
 *                    agent answers agent.upgrade as unknown (its upgrade fails with ERR_COMMAND_UNKNOWN), a 1.5
 *                    main ignores last_upgrade.
 *   1.7  2026-12-06  engine groups reach the tenant (tunnels and commands bound to a group): Tunnel.engine_group
 *                    and TunnelDirect.engine_group, and main's statements about an engine with a group name it
 *                    (common/tunnel-statements.ts). An engine without a group is vouched for exactly as before,
 *                    so it works with 1.6 hosts, tenants and engines; a grouped engine needs main, its tenant's
 *                    host, the tenant and (direct path) itself at 1.7: an older one drops the group, main's
 *                    signature then fails and the session is refused, never taken as ungrouped.
 *   1.8  2026-12-06  integration instances run on engines: the integration.run command (tenant → engine, inside
 *                    the sealed session; agent/integrations/engine-call.ts), its refusals audited on main as
 *                    engine.integration.run, and a command's Result.error_category may be `dependency` or
 *                    `rate-limited`. Additive: a 1.7 engine answers integration.run as unknown
 *                    (ERR_COMMAND_UNKNOWN), a 1.7 main does not record the refusal, a 1.7 tenant reads the new
 *                    categories as `internal` (500).
 *   1.9  2026-12-06  integration.run carries `budgetMs`, the time the engine's work may take (agent/integrations/
 *                    call-limits.ts), and a command or answer of the sealed session larger than
 *                    MAX_COMMAND_FRAME_BYTES is answered ERR_ENGINE_COMMAND_TOO_LARGE instead of being sent.
 *                    Additive: a 1.8 engine ignores budgetMs (its calls keep their own timeouts), a 1.9 engine gives a
 *                    1.8 tenant's call 20 s.
 *   1.10 2026-12-07  a host's tenant.status Event names each tenant's `events` ({stored, perSecond}: how many events
 *                    it stored since its process started, and per second over about 10 s), for the console's events
 *                    chart. Additive: a 1.9 main ignores it, a 1.9 host sends none (main shows null).
 *   1.11 2026-12-07  binary syslog batches: a tenant's TunnelTenantHello names its protocol_minor, and an engine
 *                    sends `events.batch` in the binary form (agent/tunnel/events-batch-binary.ts) to a tenant
 *                    ≥ 1.11 only. Additive: a 1.10 tenant says nothing (0) and gets the JSON args, made from the
 *                    binary batch at send time; a 1.11 tenant still takes JSON (1.10 engines, their old segments).
 */
export const PROTOCOL_MAJOR = 1;
export const PROTOCOL_MINOR = 11;
/** First minor whose tenant reads binary events.batch args (an older one gets JSON). */
export const MINOR_BINARY_EVENTS = 11;
/** First minor whose main understands AGENT_DEREGISTER_EVENT (an older one ignores unknown events). */
export const MINOR_AGENT_DEREGISTER = 5;
/** Event type an agent sends to be removed from main (Event.data empty); main answers by revoking it. */
export const AGENT_DEREGISTER_EVENT = 'agent.deregister';
/** First minor whose main understands Tunnel.flow (an older one would relay it to the engine as a close). */
export const MINOR_TUNNEL_FLOW = 2;

/** Majors main can speak. */
export const SUPPORTED_MAJORS: readonly number[] = Object.freeze([1]);

export const AGENT_VERSION = '0.1.0';
