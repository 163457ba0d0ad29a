// matrix-js-sdk 43 targets Node >= 22 and calls Promise.withResolvers (ES2024), which Node 20
// lacks: without this the client throws a TypeError right after its first /sync. Import this
// module before the SDK is loaded; since static ESM imports are hoisted, load the SDK itself with
// a dynamic `await import('matrix-js-sdk')` after this module has run (see ./js-sdk.ts).

interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> };

if (typeof P.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers<T>(): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve'];
      let reject!: Resolvers<T>['reject'];
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

export const promiseWithResolversPolyfilled = true;
