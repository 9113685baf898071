/**
 * Where the scheduler reads the time, in milliseconds. Injected so that every policy decision is
 * a function of its inputs and this clock: the server uses the process's monotonic clock,
 * simulations and tests a ManualClock they move themselves.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };

/** A clock that moves only when told: simulated traces run thousands of requests in milliseconds. */
export class ManualClock implements Clock {
  constructor(private time = 0) {}

  now(): number {
    return this.time;
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`a clock cannot move back (advance by ${ms})`);
    this.time += ms;
  }

  advanceTo(time: number): void {
    this.time = Math.max(this.time, time);
  }
}
