/** The same flow, integrity and admission tests on the relayed path (engine → main → host → tenant). */
import { flowSuite } from './tunnel-flow-suite.js';

flowSuite('relay');
