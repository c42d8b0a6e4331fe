/**
 * The tunnel client: attaches to the TAP that `ctun configure` made on this host and
 * keeps one session with the server. When the link is lost it reconnects with capped,
 * jittered back-off; the TAP stays up the whole time, so applications on this host
 * keep their sockets and addresses, and the server resumes the session.
 */
import { CtunError, ExitCode, formatHostPort, TUNNEL_DEFAULTS, type Logger } from '../common/index.js';
import { isIPv6 } from 'node:net';
import { requireIp, tunnelIpv6 } from './address.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { TickBatch } from './batch.js';
import type { FrameDevice } from './device.js';
import { ClientFastPath, type FastPathFrames } from './fast-path.js';
import { NetConfig } from './netconfig.js';
import { LogLimiter } from './limits.js';
import { describeError, echoOfSession, encode, ErrorCode, FEATURES_NONE, MessageType, PROTOCOL_VERSION, TunnelMode, type ErrorMessage, type Message, type Welcome } from './protocol.js';
import { newSessionId } from './session.js';
import { createStats, type TunnelStats } from './stats.js';
import { connectClientLink, type ClientLink, type TransportKind } from './link/index.js';
import { describeProtection, type SealFailure, type TlsMaterial } from './secure/index.js';
import { dropsByReason, type Figures } from './observe/figures.js';

/**
 * Cap of the reconnect back-off (not the Backoff default of 5 s): however long the
 * server was away, a client waits at most this before its next try, so it is back
 * within about this long of its server's return.
 */
export const RECONNECT_BACKOFF_CAP_MS = 1600;

/** Plain UDP may lose a hello: the client says it again this often until the welcome. */
export const UDP_HELLO_REPEAT_MS = 500;

/** Nothing heard from the server for this long means the link is lost (`--dead-after-ms`). */
export const DEFAULT_DEAD_AFTER_MS = 4000;

/**
 * The least `--dead-after-ms`: two keepalive intervals of a ctun server (1 s), so one
 * pong that comes late or not at all does not end a working link.
 */
export const MIN_DEAD_AFTER_MS = 2000;

export interface ClientOptions {
  host: string;
  /** Default 1723. */
  port?: number;
  /** Default udp. */
  transport?: TransportKind;
  /** TAP made by `ctun configure`; default dstap0. */
  tap?: string;
  /** Separate mode: the target to route through the tunnel. */
  dest?: string;
  /** Ping interval when the server does not say; default 1000 ms. */
  keepaliveMs?: number;
  /** Nothing heard from the server for this long means the link is dead; default DEFAULT_DEAD_AFTER_MS. */
  deadAfterMs?: number;
  /** How long to wait for the server's welcome; default 3000 ms. */
  helloTimeoutMs?: number;
  backoff?: BackoffOptions;
  logger: Logger;
  openDevice: (name: string) => FrameDevice;
  /** Whether to check that the TAP exists first (the CLI does; in-memory tests need not). */
  checkTap?: boolean;
  net?: NetConfig;
  /** Mutual TLS (`--tls`); plain when undefined. The server's certificate must name `host`. */
  tls?: TlsMaterial;
  /** Told each keepalive round-trip time (ms), e.g. for the metrics' histogram. */
  onRtt?: (ms: number) => void;
  /**
   * Data frames between TAP and server inside the addon while the session is up
   * (fast-path.ts), where it can: plain UDP on the batch socket or plain TCP over
   * IPv4, and the real TAP.
   * Default true; false keeps every frame in JavaScript (`--fast-path off`).
   */
  fastPath?: boolean;
}

/** Pings whose pong is still awaited; older ones are forgotten (their pong is lost or late). */
const PINGS_REMEMBERED = 8;

type State = 'idle' | 'connecting' | 'connected' | 'stopped';

export class TunnelClient {
  private readonly net: NetConfig;
  private sessionId = newSessionId();
  /** From the v2 welcome that created our session; presented on every resume. */
  private resumeToken: Buffer | undefined;
  private readonly logLimit = new LogLimiter(5, 5000);
  /** Errors ignored because they did not echo our session (spoofed, or a v1 server's). */
  unverifiedErrors = 0;
  private readonly backoff: Backoff;
  /** Frames from the server, written to the TAP once per received batch. */
  private readonly toTap = new TickBatch((frames) => {
    const written = this.device?.writeFrames(frames) ?? 0;
    this.stats.dropsQueue += frames.length - written;
  });
  private device: FrameDevice | undefined;
  private link: ClientLink | undefined;
  /** Open while the session is up on a link that has one (fast-path.ts). */
  private fast: ClientFastPath | undefined;
  /** Frames the fast paths of earlier sessions moved. */
  private readonly fastFrames: FastPathFrames = { rx: 0, tx: 0 };
  private state: State = 'idle';
  private lastHeard = 0;
  /** lastHeard before the message being handled: when the server was last heard alive. */
  private heardBefore = 0;
  private lostAt: number | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private routeInstalled: { dest: string; dev: string } | undefined;
  /** Our IPv6 tunnel address (CIDR) on the TAP, added for an IPv6 --dest and removed at stop. */
  private address6Installed: string | undefined;
  private nonce = 0n;
  private serverIdentity: string | undefined;
  private keepaliveMs: number;
  private everConnected = false;
  private welcomed: { resolve: (w: Welcome) => void; reject: (e: Error) => void } | undefined;
  private readonly firstWelcome: Promise<Welcome>;
  private fatal: ((e: CtunError) => void) | undefined;
  readonly stats: TunnelStats = createStats();
  /** Sealed datagrams dropped unopened, by reason (--tls on UDP). */
  readonly sealDrops: Record<SealFailure, number> = { truncated: 0, 'not-sealed': 0, 'unknown-key': 0, 'bad-tag': 0, replayed: 0, 'too-old': 0, exhausted: 0 };
  /** Send times (performance.now) of the pings in flight, by nonce. */
  private readonly pingsInFlight = new Map<bigint, number>();
  private lastRttMs: number | undefined;
  private lastOutageMs: number | undefined;
  /** Resolves when the client stops for good (rejection or stop()). */
  readonly done: Promise<CtunError | undefined>;

  constructor(private readonly o: ClientOptions) {
    this.net = o.net ?? new NetConfig();
    this.backoff = new Backoff({ maxMs: RECONNECT_BACKOFF_CAP_MS, ...o.backoff });
    this.keepaliveMs = o.keepaliveMs ?? 1000;
    // IPv4 or IPv6, written bare or as [addr]: the hello carries it bare.
    if (o.dest !== undefined) this.o = { ...o, dest: requireIp(o.dest, '--dest') };
    this.firstWelcome = new Promise<Welcome>((resolve, reject) => {
      this.welcomed = { resolve, reject };
    });
    this.firstWelcome.catch(() => {});
    this.done = new Promise((resolve) => {
      this.fatal = (e) => resolve(e);
      this.resolveDone = () => resolve(undefined);
    });
  }

  private resolveDone: () => void = () => {};

  private get log(): Logger {
    return this.o.logger;
  }

  private get tapName(): string {
    return this.o.tap ?? TUNNEL_DEFAULTS.clientTap;
  }

  /** The server as logs and errors name it: `host:port`, an IPv6 address bracketed (`[fd00::5]:1723`). */
  private get serverText(): string {
    return formatHostPort(this.o.host, this.o.port ?? TUNNEL_DEFAULTS.port);
  }

  /**
   * Opens the TAP and connects. Resolves on the first welcome; a server that is not
   * there yet is retried in the background and does not fail the start.
   */
  async start(): Promise<void> {
    if (this.o.checkTap !== false) await this.checkTap();
    this.device = this.o.openDevice(this.tapName);
    this.device.onFrames((frames) => this.onTapFrames(frames));
    this.log.info('client-starting', {
      server: this.serverText,
      transport: this.o.transport ?? TUNNEL_DEFAULTS.transport,
      tap: this.tapName,
      dest: this.o.dest,
      security: describeProtection(this.o.tls, this.o.transport ?? TUNNEL_DEFAULTS.transport),
    });
    for (const w of this.o.tls?.warnings ?? []) this.log.warn('tls-warning', { reason: w });
    this.lostAt = Date.now();
    void this.connect();
  }

  /** Waits for the first welcome, or the first fatal rejection. */
  waitConnected(timeoutMs: number): Promise<Welcome> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CtunError('CONNECT_TIMEOUT', `no welcome from ${this.serverText} within ${timeoutMs} ms`, { hint: 'check that the server runs and that the port and transport match', exitCode: ExitCode.Failure })),
        timeoutMs,
      );
    });
    return Promise.race([this.firstWelcome, timeout]).finally(() => clearTimeout(timer));
  }

  private async checkTap(): Promise<void> {
    const name = this.tapName;
    const link = await this.net.link(name);
    if (link === undefined) {
      throw new CtunError('TAP_MISSING', `TAP device ${name} does not exist on this host`, {
        hint: `create it once with: sudo ctun configure --tap ${name} ${TUNNEL_DEFAULTS.clientAddress} --user $USER`,
        exitCode: ExitCode.Device,
      });
    }
    if (link.kind !== 'tun' || (link.tunType !== undefined && link.tunType !== 'tap')) {
      throw new CtunError('TAP_INVALID', `${name} exists but is not a TAP device (kind ${link.kind ?? 'physical'})`, {
        hint: 'choose the TAP made by `ctun configure` with --tap',
        exitCode: ExitCode.Device,
      });
    }
    if (!link.up || link.addresses.length === 0) {
      this.log.warn('tap-not-configured', { tap: name, up: link.up, addresses: link.addresses.join(',') || 'none', hint: `run: sudo ctun configure --tap ${name} ADDRESS` });
    }
  }

  private onTapFrames(frames: Buffer[]): void {
    if (this.state !== 'connected' || this.link === undefined) {
      // Link down: drop like a NIC without carrier; the TAP stays up.
      this.stats.dropsQueue += frames.length;
      return;
    }
    const sent = this.link.sendFrames(frames);
    this.stats.framesOut += sent;
    this.stats.dropsQueue += frames.length - sent;
    for (let i = 0; i < sent; i++) this.stats.bytesOut += frames[i]!.length;
  }

  private async connect(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'connecting';
    const port = this.o.port ?? TUNNEL_DEFAULTS.port;
    let link: ClientLink;
    try {
      link = await connectClientLink({
        host: this.o.host,
        port,
        transport: this.o.transport ?? TUNNEL_DEFAULTS.transport,
        tls: this.o.tls,
        // TCP --tls: sealed records after the welcome, carried by the addon, as the fast path is.
        sealedStream: this.o.fastPath !== false,
        handlers: {
          message: (m) => {
            if (this.link === link) this.onMessage(m);
          },
          invalid: (e) => {
            this.stats.dropsInvalid++;
            // Anyone can send us garbage on plain UDP: a flood of it is a few lines and a count.
            const pass = this.logLimit.pass('invalid-message', Date.now());
            if (pass !== undefined) this.log.warn('invalid-message', { reason: e.message, ...pass });
          },
          closed: (reason, refusal) => {
            if (refusal !== undefined) return this.refused(refusal);
            if (this.link === link) this.linkLost(reason);
          },
          dropped: (reason) => {
            this.stats.dropsInvalid++;
            this.sealDrops[reason]++;
          },
        },
      });
    } catch (e) {
      if (e instanceof CtunError && e.exitCode === ExitCode.Rejected) return this.refused(e);
      this.scheduleRetry(`cannot reach ${this.serverText}: ${(e as Error).message}`);
      return;
    }
    if ((this.state as State) === 'stopped') {
      link.close();
      return;
    }
    this.link = link;
    this.sendHello();
    // UDP may lose the hello (or the server may come back a moment later): say it
    // again every half second until the welcome, so a returning server is met at once.
    if (link.transport === 'udp') {
      const again = setInterval(() => {
        if (this.link === link && this.state === 'connecting') this.sendHello();
        else clearInterval(again);
      }, UDP_HELLO_REPEAT_MS);
      again.unref();
    }
    this.helloTimer = setTimeout(() => {
      if (this.link === link && this.state === 'connecting') this.linkLost(`no welcome from ${this.serverText} within ${this.o.helloTimeoutMs ?? 3000} ms`);
    }, this.o.helloTimeoutMs ?? 3000);
  }

  private sendHello(): void {
    this.link?.send(
      encode({
        type: MessageType.Hello,
        version: PROTOCOL_VERSION,
        mode: this.o.dest === undefined ? TunnelMode.Local : TunnelMode.Separate,
        flags: this.link?.offers ?? FEATURES_NONE,
        mtu: TUNNEL_DEFAULTS.mtu,
        sessionId: this.sessionId,
        destination: this.o.dest,
        resumeToken: this.resumeToken,
      }),
    );
  }

  private onMessage(m: Message): void {
    this.heardBefore = this.lastHeard;
    this.lastHeard = Date.now();
    switch (m.type) {
      case MessageType.Welcome:
        // A welcome for another session is not ours (a spoofer's, or a stale one).
        if (!m.sessionId.equals(this.sessionId)) return;
        if (this.link?.identity !== undefined) this.serverIdentity = this.link.identity;
        if (m.resumeToken !== undefined) this.resumeToken = m.resumeToken;
        void this.onWelcome(m);
        return;
      case MessageType.Data: {
        this.stats.framesIn++;
        this.stats.bytesIn += m.frame.length;
        this.toTap.push(m.frame);
        return;
      }
      case MessageType.Ping:
        this.link?.send(encode({ type: MessageType.Pong, nonce: m.nonce }));
        return;
      case MessageType.Pong:
        this.onPong(m.nonce);
        return;
      case MessageType.Bye:
        this.linkLost(`server said bye: ${m.reason}`);
        return;
      case MessageType.Error:
        this.onServerError(m);
        return;
      default:
        return;
    }
  }

  private async onWelcome(w: Welcome): Promise<void> {
    if (this.state !== 'connecting') return;
    clearTimeout(this.helloTimer);
    this.state = 'connected';
    this.backoff.reset();
    this.keepaliveMs = w.keepaliveMs > 0 ? w.keepaliveMs : this.keepaliveMs;
    const outageMs = this.lostAt === undefined ? 0 : Date.now() - this.lostAt;
    if (this.o.dest !== undefined && this.routeInstalled === undefined) {
      try {
        await this.routeDest(this.o.dest, w);
        this.routeInstalled = { dest: this.o.dest, dev: this.tapName };
        this.log.info('route-added', { dest: this.o.dest, via: w.serverAddress, dev: this.tapName });
      } catch (e) {
        const err = e instanceof CtunError ? e : new CtunError('ROUTE_FAILED', `cannot route ${this.o.dest} through ${this.tapName}`, { cause: e });
        this.welcomed?.reject(err);
        this.fatal?.(err);
        void this.stop('route failed');
        return;
      }
    }
    if (this.everConnected) {
      this.lastOutageMs = outageMs;
      this.log.info('client-reconnected', { server: this.serverText, outageMs, resumed: w.resumed });
    } else {
      this.log.info('client-connected', { server: this.serverText, ...(this.serverIdentity === undefined ? {} : { identity: this.serverIdentity }), serverAddress: `${w.serverAddress}/${w.prefix}`, mtu: w.mtu, resumed: w.resumed });
    }
    this.everConnected = true;
    this.lostAt = undefined;
    this.lastHeard = Date.now();
    clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = setInterval(() => this.keepalive(), this.keepaliveMs);
    this.openFastPath();
    // A first ping at once confirms the session: a plain-UDP server full of spoofed,
    // never-confirmed hellos makes room by dropping those, and ours is then not one.
    this.ping();
    this.welcomed?.resolve(w);
  }

  /**
   * Routes --dest through the TAP via the server's tunnel address. An IPv6 --dest also
   * needs an IPv6 address of ours on the TAP: the tunnel IPv6 twin of its IPv4 one
   * (address.ts, TUNNEL_IPV6_PREFIX), in the prefix the welcome gives.
   */
  private async routeDest(dest: string, w: Welcome): Promise<void> {
    if (isIPv6(dest)) {
      if (!isIPv6(w.serverAddress)) {
        throw new CtunError('ROUTE_FAILED', `the server answered the IPv6 --dest ${dest} with an IPv4 tunnel address (${w.serverAddress}): it does not route IPv6`, {
          hint: 'upgrade the server to a ctun that routes an IPv6 --dest',
        });
      }
      const own = (await this.net.link(this.tapName))?.addresses[0]?.split('/')[0];
      if (own === undefined) {
        throw new CtunError('ROUTE_FAILED', `${this.tapName} has no IPv4 address, which its IPv6 tunnel address is made from`, {
          hint: `sudo ctun configure --tap ${this.tapName} ${TUNNEL_DEFAULTS.clientAddress}`,
        });
      }
      const cidr = `${tunnelIpv6(own)}/${w.prefix}`;
      await this.net.requireIpv6(this.tapName);
      await this.net.addAddress6(this.tapName, cidr);
      this.address6Installed = cidr;
      this.log.info('address-added', { address: cidr, dev: this.tapName });
    }
    await this.net.addHostRoute(dest, w.serverAddress, this.tapName);
  }

  /**
   * Plain UDP has no authentication: anyone can send us an Error from the server's
   * address. A v2 server echoes our session id in every error that answers a hello, so
   * only those may stop or send back this client; others are counted and, for a
   * version mismatch (a v1 server cannot echo), retried with back-off, never fatal.
   */
  private unverified(m: ErrorMessage): boolean {
    if (this.link?.transport !== 'udp' || this.o.tls !== undefined || m.code === ErrorCode.NoSession) return false;
    return m.echo === undefined || !m.echo.equals(echoOfSession(this.sessionId));
  }

  /** The server holds no session of ours (any more): a connected client counts a reconnect; either way it says hello again at once. */
  private helloAgain(): void {
    if (this.state === 'connected') {
      this.closeFastPath();
      this.state = 'connecting';
      // The outage began when the old server was last heard, not now: a client
      // whose keepalive had not yet noticed learns it from the new server.
      this.lostAt ??= this.heardBefore;
      this.stats.reconnects++;
    }
    this.sendHello();
  }

  private onServerError(m: ErrorMessage): void {
    const { code, reason } = m;
    if (this.unverified(m)) {
      this.unverifiedErrors++;
      const pass = this.logLimit.pass('error-unverified', Date.now());
      if (code === ErrorCode.VersionMismatch && this.state === 'connecting') {
        if (pass !== undefined) this.log.error('version-mismatch', { reason, hint: versionHint(reason), ...pass });
        this.linkLost(`version mismatch: ${reason}`);
        return;
      }
      if (pass !== undefined) this.log.warn('error-ignored', { code: describeError(code), reason, why: 'it does not echo this session (spoofed, or not an answer to our hello)', ...pass });
      return;
    }
    switch (code) {
      case ErrorCode.ResumeRefused:
        // Our session id is taken by another peer, or we moved: start a new session.
        this.log.warn('resume-refused', { reason, action: 'starting a new session' });
        this.sessionId = newSessionId();
        this.resumeToken = undefined;
        this.helloAgain();
        return;
      case ErrorCode.NoSession:
        // The server does not know us (it restarted): say hello again at once.
        if (this.state === 'connected') this.log.warn('session-unknown', { reason: 'server lost our session (restarted?); saying hello again' });
        this.helloAgain();
        return;
      case ErrorCode.ServerFull:
      case ErrorCode.ShuttingDown:
        this.linkLost(`server refused for now (${describeError(code)}): ${reason}`);
        return;
      default: {
        const err = new CtunError('REJECTED', `the server rejected this client (${describeError(code)}): ${reason}`, {
          hint: code === ErrorCode.VersionMismatch ? versionHint(reason) : code === ErrorCode.ModeMismatch ? 'drop --dest for a local-mode server' : undefined,
          exitCode: ExitCode.Rejected,
        });
        this.log.error('client-rejected', { code: describeError(code), reason });
        this.welcomed?.reject(err);
        this.fatal?.(err);
        void this.stop('rejected');
      }
    }
  }

  /** TLS refused this client, or it refused the server: no retry, exit code 5. */
  private refused(err: CtunError): void {
    if (this.state === 'stopped') return;
    this.log.error('client-rejected', { reason: err.message });
    this.welcomed?.reject(err);
    this.fatal?.(err);
    void this.stop('rejected');
  }

  private keepalive(): void {
    if (this.state !== 'connected') return;
    this.syncFastPath();
    const silent = Date.now() - this.lastHeard;
    if (silent > (this.o.deadAfterMs ?? DEFAULT_DEAD_AFTER_MS)) {
      this.linkLost(`server silent for ${silent} ms`);
      return;
    }
    this.ping();
  }

  /** Sends a keepalive ping and remembers when, for the round-trip time. */
  private ping(): void {
    const nonce = ++this.nonce;
    this.pingsInFlight.set(nonce, performance.now());
    for (const old of this.pingsInFlight.keys()) {
      if (this.pingsInFlight.size <= PINGS_REMEMBERED) break;
      this.pingsInFlight.delete(old);
    }
    this.link?.send(encode({ type: MessageType.Ping, nonce }));
  }

  private onPong(nonce: bigint): void {
    const sentAt = this.pingsInFlight.get(nonce);
    if (sentAt === undefined) return; // not ours, answered twice, or forgotten
    this.pingsInFlight.delete(nonce);
    this.lastRttMs = performance.now() - sentAt;
    this.o.onRtt?.(this.lastRttMs);
  }

  /** The figures for metrics and the status line; sealed drops count under their reason, not also as invalid. */
  figures(): Figures {
    this.syncFastPath();
    return {
      role: 'client',
      frames: { rx: this.stats.framesIn, tx: this.stats.framesOut },
      bytes: { rx: this.stats.bytesIn, tx: this.stats.bytesOut },
      drops: dropsByReason(this.stats, this.sealDrops),
      connected: this.state === 'connected',
      server: this.serverText,
      reconnects: this.stats.reconnects,
      lastOutageMs: this.lastOutageMs,
      lastRttMs: this.lastRttMs,
      fastPath: this.fastPathFrames(),
    };
  }

  /** The statistics with the fast path's counters added up to now (the field `stats` lags them by up to a keepalive). */
  syncedStats(): TunnelStats {
    this.syncFastPath();
    return this.stats;
  }

  /** Frames moved by the native fast path since start (they are in `frames` too). */
  fastPathFrames(): FastPathFrames {
    const now = this.fast?.frames ?? { rx: 0, tx: 0 };
    return { rx: this.fastFrames.rx + now.rx, tx: this.fastFrames.tx + now.tx };
  }

  /** Hands data frames to the addon while the session is up, where the link and TAP allow it. */
  private openFastPath(): void {
    if (this.o.fastPath === false || this.fast !== undefined) return;
    const tap = this.device?.fastPath;
    // Only with a TAP to forward to: reading a TCP link's end hands its connection to the addon.
    const socket = tap === undefined ? undefined : this.link?.fastPath;
    if (tap === undefined || socket === undefined) return;
    this.fast = ClientFastPath.open(tap, socket);
    this.log.debug('fast-path-on', { tap: this.tapName, server: this.serverText });
  }

  /** Back to JavaScript for every frame: the session is not up (or the client stops). */
  private closeFastPath(): void {
    const fast = this.fast;
    if (fast === undefined) return;
    this.fast = undefined;
    fast.close(this.stats);
    this.fastFrames.rx += fast.frames.rx;
    this.fastFrames.tx += fast.frames.tx;
  }

  /** Adds the fast path's counters to the stats; a datagram it took is the server heard. */
  private syncFastPath(): void {
    const since = this.fast?.sync(this.stats);
    // Whole milliseconds, as every other clock reading here (the addon's are fractional).
    if (since !== undefined) this.lastHeard = Math.max(this.lastHeard, Date.now() - Math.round(since));
  }

  /** What `/readyz` checks: the TAP still exists, and the client is connected to its server. */
  async readiness(): Promise<Record<string, boolean>> {
    const tap = this.state === 'stopped' ? false : (await this.net.link(this.tapName).catch(() => undefined)) !== undefined;
    return { tap, connected: this.state === 'connected' };
  }

  private linkLost(reason: string): void {
    if (this.state === 'stopped') return;
    const wasConnected = this.state === 'connected';
    this.closeFastPath();
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.helloTimer);
    const link = this.link;
    this.link = undefined;
    link?.close();
    if (wasConnected) {
      this.lostAt = Date.now();
      this.stats.reconnects++;
      this.log.warn('link-lost', { reason, tap: `${this.tapName} stays up` });
    }
    this.scheduleRetry(reason);
  }

  private scheduleRetry(reason: string): void {
    if (this.state === 'stopped') return;
    this.state = 'idle';
    const delay = this.backoff.next();
    this.log.info('reconnect-scheduled', { inMs: delay, attempt: this.backoff.attempts, reason });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Says bye, removes the `--dest` route, closes the TAP (a persistent TAP stays). */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.state === 'stopped') return;
    const wasConnected = this.state === 'connected';
    this.closeFastPath();
    this.state = 'stopped';
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.helloTimer);
    if (wasConnected) {
      this.link?.send(encode({ type: MessageType.Bye, reason }));
      await new Promise((r) => setTimeout(r, 20));
    }
    this.link?.close();
    this.link = undefined;
    if (this.routeInstalled !== undefined) {
      await this.net.deleteHostRoute(this.routeInstalled.dest, this.routeInstalled.dev).catch(() => {});
      this.log.info('route-removed', { dest: this.routeInstalled.dest });
      this.routeInstalled = undefined;
    }
    if (this.address6Installed !== undefined) {
      await this.net.deleteAddress(this.tapName, this.address6Installed).catch(() => {});
      this.log.info('address-removed', { address: this.address6Installed, dev: this.tapName });
      this.address6Installed = undefined;
    }
    this.device?.close();
    this.resolveDone();
  }
}

/**
 * Which side to upgrade, from a VersionMismatch reason: v2 servers say "server speaks
 * vMIN-MAX", v1 servers "this server speaks version 1".
 */
export function versionHint(reason: string): string {
  const m = /speaks (?:protocol )?(?:version |v)(\d+)(?:-(\d+))?/.exec(reason);
  if (m === null) return `use ctun versions that share a protocol version (this client speaks ${PROTOCOL_VERSION})`;
  const max = Number(m[2] ?? m[1]);
  return max < PROTOCOL_VERSION
    ? `upgrade the server: it speaks protocol version ${max} at most, this client ${PROTOCOL_VERSION}`
    : `upgrade the client: the server speaks protocol version ${m[1]}${m[2] === undefined ? '' : `-${m[2]}`}, this client ${PROTOCOL_VERSION}`;
}
