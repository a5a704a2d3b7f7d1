/**
 * `source`'s messages passed through `value`, and its failures through `error`.
 *
 * A plain iterator rather than an async generator: a watch stream stays open for hours,
 * and a generator layer would hold a suspended frame for each of them (with the last
 * message it passed on) besides its source's.
 */
export function mappedStream<T, U>(
  source: AsyncIterable<T>,
  value: (message: T) => U,
  error: (failure: unknown) => unknown = (failure) => failure,
): AsyncIterableIterator<U> {
  return new MappedStream(source[Symbol.asyncIterator](), value, error);
}

class MappedStream<T, U> implements AsyncIterableIterator<U> {
  readonly #source: AsyncIterator<T>;
  readonly #value: (message: T) => U;
  readonly #error: (failure: unknown) => unknown;

  constructor(
    source: AsyncIterator<T>,
    value: (message: T) => U,
    error: (failure: unknown) => unknown,
  ) {
    this.#source = source;
    this.#value = value;
    this.#error = error;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<U> {
    return this;
  }

  // A promise chain, not an async function: a suspended async function is one more object
  // (and scope) per open stream, all the while it waits.
  next(): Promise<IteratorResult<U, undefined>> {
    return this.#source.next().then(
      (result) => this.#mapped(result),
      (failure: unknown) => {
        throw this.#error(failure);
      },
    );
  }

  /** The caller stops reading: the source is told, and cleans up (its `finally` runs). */
  async return(): Promise<IteratorResult<U, undefined>> {
    try {
      await this.#source.return?.();
    } catch (failure) {
      throw this.#error(failure);
    }
    return { done: true, value: undefined };
  }

  async throw(thrown?: unknown): Promise<IteratorResult<U, undefined>> {
    if (!this.#source.throw) {
      await this.return();
      throw thrown;
    }
    let result: IteratorResult<T>;
    try {
      result = await this.#source.throw(thrown);
    } catch (failure) {
      throw this.#error(failure);
    }
    return this.#mapped(result);
  }

  #mapped(result: IteratorResult<T>): IteratorResult<U, undefined> {
    if (result.done) return { done: true, value: undefined };
    try {
      return { value: this.#value(result.value) };
    } catch (failure) {
      throw this.#error(failure);
    }
  }
}
