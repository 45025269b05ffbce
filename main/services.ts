/** The services of a running main, handed to the HTTP routes. */
import type { Logger } from '#common/logging.js';
import type { Registry } from './registry.js';
import type { AuditLog } from './access/audit.js';
import type { Enrolment } from './enrolment/enrolment.js';
import type { AgentGateway } from './agents/gateway.js';
import type { CommandOutbox } from './agents/outbox.js';
import type { MainConfig } from './config.js';
import type { TenantService } from './tenants/tenants.js';
import type { MainRoles } from './access/roles.js';
import type { ContentLibrary } from './content/library.js';
import type { AuthFailureThrottle } from './access/auth-throttle.js';
import type { RelayLimits } from './tunnels/relay-limits.js';
import type { EngineRevocations } from './agents/engine-revocations.js';
import type { MainMetrics } from './metrics.js';
import type { ReleaseStore } from './agents/releases.js';
import type { AgentUpgrades } from './agents/upgrades.js';
import type { SessionStore } from './access/sessions.js';
import type { SecretBox } from './access/secret-box.js';

export interface MainServices {
  config: Readonly<MainConfig>;
  publicUrl: string;
  /** Trust anchors for agents (bundle ca.pem): main's CA plus a brought-own server certificate's chain. */
  caPem: string;
  registry: Registry;
  audit: AuditLog;
  enrolment: Enrolment;
  gateway: AgentGateway;
  outbox: CommandOutbox;
  tenants: TenantService;
  /** Recently revoked engines, told to the hosts of their tenants. */
  revocations: EngineRevocations;
  /** Custom roles, read by authentication on every request. */
  roles: MainRoles;
  content: ContentLibrary;
  /** Failed authentications per address: main's own keys and, through the relay, tenant keys. */
  authThrottle: AuthFailureThrottle;
  /** Console sessions (cookie beside bearer keys). */
  sessions: SessionStore;
  /** Seals TOTP secrets at rest with the key outside the registry (access/secret-box.ts). */
  secretBox: SecretBox;
  /** The tunnel relay's bounds: per-agent counts of what it dropped. */
  relay: RelayLimits;
  /** Agent releases main serves, and the upgrades it started. */
  releases: ReleaseStore;
  upgrades: AgentUpgrades;
  /** What GET /metrics serves. */
  metrics: MainMetrics;
  log: Logger;
}
