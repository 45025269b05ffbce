/**
 * The JSON shapes several e2e files read back from the REST API: the body of every error answer, and a
 * tenant's incidents, their pages and its indicators as its API answers through main. Types only, written
 * from the wire as a client sees it; not main's or the tenant's own definitions (tests check those).
 */

/** Every 4xx/5xx answer: `{error: {code, message}}`, the code stable (common/errors.ts). */
export interface ErrorBody {
  error: { code: string; message: string };
}

export interface Incident {
  id: string;
  name: string;
  type: string;
  severity: number;
  details: string;
  status: string;
  created: string;
  updated: string;
  closed?: string;
}

/** One page of `GET /tenants/T/api/incidents`; `next` is the cursor for the following page. */
export interface IncidentPage {
  items: Incident[];
  next: string | null;
}

export interface Indicator {
  value: string;
  type: string;
  reputation: string;
  firstSeen: string;
  lastSeen: string;
  incidents: string[];
}
