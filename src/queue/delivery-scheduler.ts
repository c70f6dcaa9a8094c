// Runs delivery attempts in the background with a bound on how many run at once, and brings
// failed ones back after a delay. Accepting a message never waits for its delivery.

export interface DeliverySchedulerOptions<J> {
  /** Attempts running at once. */
  readonly concurrency: number;
  /** One attempt; it decides itself whether to call later(). Must not throw. */
  readonly attempt: (job: J) => Promise<void>;
  /** Start with attempts held back (tests use it to leave work in the spool). */
  readonly paused?: boolean;
}

export class DeliveryScheduler<J> {
  private ready: J[] = [];
  private head = 0;
  private running = 0;
  private stopped = false;
  private paused: boolean;
  /** Jobs waiting for their retry time. */
  private readonly timers = new Map<J, NodeJS.Timeout>();
  private idleWaiters: (() => void)[] = [];
  private pumpQueued = false;

  constructor(private readonly opts: DeliverySchedulerOptions<J>) {
    this.paused = opts.paused ?? false;
  }

  get inFlight(): number {
    return this.running;
  }

  /** Jobs waiting for a slot (retries waiting for their timer not included). */
  get waiting(): number {
    return this.ready.length - this.head;
  }

  add(job: J): void {
    if (this.stopped) return;
    this.ready.push(job);
    this.queuePump();
  }

  /**
   * Starts waiting jobs from the event loop's check phase, not inside add(): a message's first
   * attempt then begins after the session that accepted it has written its 250, not before it
   * (the attempt's first file system calls would otherwise go first, each waking a thread of
   * libuv's pool on the way to the client's reply). Jobs added in one turn start together.
   */
  private queuePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Tries the job again after `delayMs` (replacing an earlier timer of the same job). */
  later(job: J, delayMs: number): void {
    if (this.stopped) return;
    this.cancel(job);
    // setTimeout's limit is about 24.8 days; longer waits are cut to it and the job looks again.
    const timer = setTimeout(() => {
      this.timers.delete(job);
      this.add(job);
    }, Math.min(Math.max(delayMs, 0), 2 ** 31 - 1));
    // A pending retry alone does not keep the process alive; the listeners do.
    timer.unref();
    this.timers.set(job, timer);
  }

  /** Runs a job that waits for its timer now (an operator's "retry now"); false if it was not waiting. */
  wake(job: J): boolean {
    if (!this.cancel(job)) return false;
    this.add(job);
    return true;
  }

  /** Drops the job's pending timer; true if it had one. */
  cancel(job: J): boolean {
    const timer = this.timers.get(job);
    if (timer === undefined) return false;
    clearTimeout(timer);
    this.timers.delete(job);
    return true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Starts nothing more and drops pending retries (the spool still has those messages). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.ready = [];
    this.head = 0;
  }

  /** Resolves when no attempt is running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (!this.paused && !this.stopped && this.running < this.opts.concurrency && this.head < this.ready.length) {
      const job = this.ready[this.head++]!; // head < ready.length (the loop condition)
      if (this.head > 1024 && this.head * 2 > this.ready.length) {
        this.ready = this.ready.slice(this.head);
        this.head = 0;
      }
      this.running++;
      void this.opts.attempt(job).finally(() => this.finished());
    }
  }

  private finished(): void {
    this.running--;
    if (this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((w) => w());
    }
    this.pump();
  }
}
