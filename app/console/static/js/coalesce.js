// Calls folded together: a burst of stream events for one warning costs one request, not one each
// (the API counts every request against the key's rate limit), and one redraw, not one each.

/** fn(arg) once, delayMs after the first call of a burst, with the latest arg of the burst. */
export function coalesce(fn, delayMs) {
  let timer = null;
  let latest;
  return (arg) => {
    latest = arg;
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      fn(latest);
    }, delayMs);
  };
}

/** fn() once at the next animation frame, however often it is asked for before then. */
export function onceAFrame(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      fn();
    });
  };
}
