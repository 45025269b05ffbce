// The launcher an installed agent's unit runs from its last known-good release (agent/upgrade/launcher.ts);
// scripts/build-agent-release.mjs bundles it into app/launcher.mjs. Plain JS like bin/palisade-agent.js.
import { launcherMain } from '../dist/agent/upgrade/launcher.js';

launcherMain();
