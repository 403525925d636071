// A parser of server-sent events (the WHATWG event-stream format) over a fetch() body: no DOM, no
// imports, so it runs (and is tested) anywhere a ReadableStream does.

/**
 * Frames from a byte stream, as {event, data, id, retry}: a blank line ends a frame, lines
 * starting with ':' are comments (keep-alive pings), lines may end in CRLF, LF or CR, and a
 * chunk may end anywhere, even inside a UTF-8 character. A frame cut off by the end of the stream
 * is dropped, as the format says.
 */
const empty = () => ({ event: 'message', data: [], id: null, retry: null });

/** One line into the frame being read; the finished frame when the line is blank and it holds anything. */
function takeLine(reading, line) {
  const frame = reading.frame;
  if (line === '') {
    reading.frame = empty();
    const any = frame.data.length || frame.event !== 'message' || frame.retry !== null;
    return any ? { ...frame, data: frame.data.join('\n') } : null;
  }
  if (line.startsWith(':')) return null; // a comment: the keep-alive ping
  const colon = line.indexOf(':');
  const field = colon < 0 ? line : line.slice(0, colon);
  const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
  if (field === 'event') frame.event = text;
  else if (field === 'data') frame.data.push(text);
  else if (field === 'id') frame.id = text;
  else if (field === 'retry' && /^\d+$/.test(text)) frame.retry = Number(text);
  return null;
}

export async function* frames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const reading = { frame: empty() };
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    buffer += done ? '' : value;
    // A CR at the end may be the first half of a CRLF whose LF is in the next chunk: held back, or
    // the LF would end an empty line, which ends the frame early. At the end it is a line end.
    const heldCr = !done && buffer.endsWith('\r');
    const lines = (heldCr ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
    buffer = lines.pop() + (heldCr ? '\r' : ''); // the last piece may be a line still arriving
    for (const line of lines) {
      const frame = takeLine(reading, line);
      if (frame) yield frame;
    }
    if (done) return;
  }
}
