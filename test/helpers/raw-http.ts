// fetch() and inject() parse and normalize a URL before it leaves, so `/%63dni/metadata` or an
// absolute-form target never reaches the server as written. These requests are written by hand
// on a socket, byte for byte.
import { connect } from 'node:net'

export interface RawAnswer {
  /** 0 when the server closed the connection without an answer. */
  status: number
  /** Header names in lower case. */
  headers: Record<string, string>
  body: string
}

export interface RawRequest {
  method: string
  /** The request target exactly as it goes on the request line. */
  target: string
  headers?: Record<string, string>
  body?: string
}

/** Sends one HTTP/1.1 request (Connection: close) to 127.0.0.1:`port` and reads the answer to the end. */
export function rawRequest(port: number, request: RawRequest): Promise<RawAnswer> {
  const body = request.body ?? ''
  const lines = [
    `${request.method} ${request.target} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: close',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ]
  for (const [name, value] of Object.entries(request.headers ?? {})) lines.push(`${name}: ${value}`)
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    // A server that drops the connection (a method Node will not serve) resets it: no answer.
    socket.on('error', () => undefined)
    socket.on('close', () => resolve(parse(Buffer.concat(chunks).toString('latin1'))))
    // write, not end: Node's server drops a request whose client half-closes before the answer.
    // Connection: close makes the server end the connection once it has answered.
    socket.write(`${lines.join('\r\n')}\r\n\r\n${body}`)
  })
}

function parse(text: string): RawAnswer {
  const split = text.indexOf('\r\n\r\n')
  const [statusLine = '', ...fields] = (split === -1 ? text : text.slice(0, split)).split('\r\n')
  const headers: Record<string, string> = {}
  for (const field of fields) {
    const colon = field.indexOf(':')
    headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim()
  }
  return {
    status: Number(/^HTTP\/1\.[01] (\d{3}) /.exec(statusLine)?.[1] ?? 0),
    headers,
    body: split === -1 ? '' : text.slice(split + 4),
  }
}
