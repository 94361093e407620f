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
  lastModified?: string
  /** An answer other than 200 / 304. */
  status?: number
  /** Milliseconds before the answer. */
  delay?: number
  contentType?: string
}

export interface MetadataServer {
  url: string
  resources: Map<string, Resource>
  /** Every request: path, and the answer's status. */
  requests: { path: string; status: number; headers: http.IncomingHttpHeaders }[]
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
    const answer = (status: number, headers: Record<string, string> = {}, body = ''): void => {
      requests.push({ path, status, headers: request.headers })
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
    if (resource.status !== undefined) return answer(resource.status)
    const etag = etagOf(resource.body)
    const headers: Record<string, string> = {
      etag,
      'content-type':
        resource.contentType ??
        (resource.ptype === null || resource.ptype === undefined
          ? 'application/json'
          : `application/cdni; ptype=${resource.ptype}`),
    }
    if (resource.cacheControl !== undefined) headers['cache-control'] = resource.cacheControl
    if (resource.lastModified !== undefined) headers['last-modified'] = resource.lastModified
    if (request.headers['if-none-match'] === etag) return answer(304, headers)
    answer(200, headers, resource.body)
  }
  server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const bound = (server.address() as AddressInfo).port
  let open = true
  const self: MetadataServer = {
    url: `http://127.0.0.1:${bound}`,
    resources,
    requests,
    failWith: null,
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
