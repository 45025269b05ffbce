/**
 * The engine's session states (agent/engine/engine-state.ts): every path the engine takes is in the
 * table, a transition outside it is a typed error, and closed is terminal. Pure.
 */
import { describe, expect, it } from 'vitest';
import { checkEngineTransition, ENGINE_TRANSITIONS, type EngineState } from '../../agent/engine/engine-state.js';

const walk = (path: EngineState[]) => {
  for (let i = 1; i < path.length; i++) checkEngineTransition(path[i - 1], path[i]);
};

describe('engine session states', () => {
  it('allow the paths an engine takes', () => {
    walk(['idle', 'hello', 'dialling', 'direct', 'idle', 'backoff', 'hello', 'relayed', 'idle', 'closed']);
    walk(['idle', 'hello', 'dialling', 'hello', 'relayed']); // the direct path failed: a relayed hello
    walk(['idle', 'hello', 'hello', 'idle', 'backoff', 'idle', 'hello']); // an unusable offer; a new connection to main
  });

  it('refuse any other with ERR_ENGINE_STATE, and closed leads nowhere', () => {
    expect(() => checkEngineTransition('idle', 'direct')).toThrow(
      expect.objectContaining({ code: 'ERR_ENGINE_STATE', category: 'internal' }),
    );
    expect(() => checkEngineTransition('relayed', 'direct')).toThrow(
      expect.objectContaining({ code: 'ERR_ENGINE_STATE' }),
    );
    expect(() => checkEngineTransition('backoff', 'dialling')).toThrow(
      expect.objectContaining({ code: 'ERR_ENGINE_STATE' }),
    );
    expect(ENGINE_TRANSITIONS.closed).toEqual([]);
    for (const s of Object.keys(ENGINE_TRANSITIONS) as EngineState[])
      if (s !== 'closed') expect(ENGINE_TRANSITIONS[s]).toContain('closed');
  });
});
