/** Tunnel flow control, bulk integrity and session admission on the direct engine ⇄ host path. */
import { flowSuite } from './tunnel-flow-suite.js';

flowSuite('direct');
