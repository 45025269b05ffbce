/**
 * The same tunnel tests on the relayed path (engine → main → host → tenant), as when an engine cannot reach its
 * tenant's host.
 */
import { tunnelSuite } from './tunnel-suite.js';

tunnelSuite('relay');
