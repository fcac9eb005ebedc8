/** A token bucket: `rate` tokens per second, holding at most `capacity`. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  readonly rate: number;
  readonly capacity: number;
  private readonly now: () => number;

  constructor(rate: number, capacity: number, now: () => number = Date.now) {
    this.rate = rate;
    this.capacity = capacity;
    this.now = now;
    this.tokens = capacity;
    this.updatedAt = now();
  }

  /** Takes the tokens if they are there; otherwise returns the seconds until they will be. */
  tryTake(count: number): number {
    this.refill();
    if (this.tokens >= count) {
      this.tokens -= count;
      return 0;
    }
    return (count - this.tokens) / this.rate;
  }

  /** Takes the tokens now, going into debt if need be; returns the ms to wait before proceeding. */
  takeWithDebt(count: number): number {
    this.refill();
    this.tokens -= count;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.rate) * 1000;
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedAt) / 1000) * this.rate);
    this.updatedAt = now;
  }
}
