/** Tunnels end to end on the direct engine ⇄ host path (the default when the host offers one). */
import { tunnelSuite } from './tunnel-suite.js';

tunnelSuite('direct');
