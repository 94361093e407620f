/**
 * A uCDN's metadata server for the follower's tests: resources by path, each with its body, its
 * CDNI payload type and its caching headers; strong ETags from the body, 304s for a matching
 * If-None-Match, and every request recorded. A test changes a resource, breaks it, slows it or
 * stops the whole server, as a uCDN would.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Resource {
  body: string
  /** `application/cdni; ptype=<ptype>`; null: `application/json`. */
  ptype?: string | null
  cacheControl?: string
  expires?: string
  lastModified?: string
  /** An answer other than 200 / 304. */
  status?: number
  /** Milliseconds before the answer. */
  delay?: number
  /** In place of the media type the ptype makes; '' sends none. */
  contentType?: string
  /** No ETag: revalidated by Last-Modified alone. */
  noEtag?: boolean
  /** Headers sent with a `status` answer. */
  headers?: Record<string, string>
  /** Sends the headers and half the body, then drops the connection. */
  truncate?: boolean
  /** Sends the body one byte every this many milliseconds. */
  drip?: number
}

export interface MetadataServer {
  url: string
  resources: Map<string, Resource>
  /** Every request: path, and the answer's status. */
  requests: { path: string; status: number; headers: http.IncomingHttpHeaders; at: number }[]
  /** The most requests it has had in flight at once. */
  mostInFlight: number
  /** Answers every request with this status while set (a uCDN in trouble). */
  failWith: number | null
  set(path: string, resource: Resource | unknown): void
  close(): Promise<void>
  /** Listens again on the same port, after close(). */
  reopen(): Promise<void>
}

const etagOf = (body: string): string => `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`

export async function metadataServer(t: { teardown: (fn: () => unknown) => void }, port = 0): Promise<MetadataServer> {
  const resources = new Map<string, Resource>()
  const requests: MetadataServer['requests'] = []
  let server: http.Server
  const handler = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const path = (request.url ?? '/').split('?')[0] as string
    const resource = resources.get(path)
    inFlight++
    self.mostInFlight = Math.max(self.mostInFlight, inFlight)
    response.on('close', () => inFlight--)
    const answer = (status: number, headers: Record<string, string> = {}, body = ''): void => {
      requests.push({ path, status, headers: request.headers, at: Date.now() })
      const send = () => {
        response.writeHead(status, headers)
        response.end(body)
      }
      const delay = resource?.delay ?? 0
      if (delay > 0) setTimeout(send, delay)
      else send()
    }
    if (self.failWith !== null) return answer(self.failWith)
    if (resource === undefined) return answer(404)
    if (resource.status !== undefined) return answer(resource.status, resource.headers)
    if (resource.drip !== undefined) {
      requests.push({ path, status: 200, headers: request.headers, at: Date.now() })
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': String(resource.body.length) })
      let sent = 0
      const timer = setInterval(() => {
        if (response.destroyed || sent === resource.body.length) return clearInterval(timer)
        response.write(resource.body[sent++] as string)
      }, resource.drip)
      return
    }
    if (resource.truncate === true) {
      requests.push({ path, status: 200, headers: request.headers, at: Date.now() })
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': String(resource.body.length) })
      response.write(resource.body.slice(0, resource.body.length >> 1), () => response.destroy())
      return
    }
    const etag = etagOf(resource.body)
    const headers: Record<string, string> = resource.noEtag === true ? {} : { etag }
    const type =
      resource.contentType ??
      (resource.ptype === null || resource.ptype === undefined
        ? 'application/json'
        : `application/cdni; ptype=${resource.ptype}`)
    if (type !== '') headers['content-type'] = type
    if (resource.cacheControl !== undefined) headers['cache-control'] = resource.cacheControl
    if (resource.expires !== undefined) headers.expires = resource.expires
    if (resource.lastModified !== undefined) headers['last-modified'] = resource.lastModified
    if (resource.noEtag !== true && request.headers['if-none-match'] === etag) return answer(304, headers)
    const since = request.headers['if-modified-since']
    if (resource.noEtag === true && since !== undefined && since === resource.lastModified) return answer(304, headers)
    answer(200, headers, resource.body)
  }
  server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const bound = (server.address() as AddressInfo).port
  let open = true
  let inFlight = 0
  const self: MetadataServer = {
    url: `http://127.0.0.1:${bound}`,
    resources,
    requests,
    failWith: null,
    mostInFlight: 0,
    set(path, resource) {
      resources.set(
        path,
        typeof resource === 'object' && resource !== null && 'body' in resource
          ? (resource as Resource)
          : { body: JSON.stringify(resource) },
      )
    },
    async close() {
      if (!open) return
      open = false
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    async reopen() {
      server = http.createServer(handler)
      await new Promise<void>((resolve) => server.listen(bound, '127.0.0.1', resolve))
      open = true
    },
  }
  t.teardown(() => self.close())
  return self
}
