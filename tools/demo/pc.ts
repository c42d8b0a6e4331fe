/**
 * A network namespace standing for the user's PC: its only path to the Docker host is
 * one veth pair, so container addresses are not reachable from it, as from a real
 * remote PC. The tunnel port is published on the host end of that veth. Built from the
 * lab's namespace and veth.
 */
import { execa } from 'execa';
import { addVeth, Netns, type ExecOptions } from '../lab/index.js';

export interface PcOptions {
  /** Distinguishes concurrent PCs (names, addresses); 0-250. */
  index?: number;
  /** Prefix of the names; default `ctunpc`. */
  prefix?: string;
}

export class Pc extends Netns {
  private constructor(
    name: string,
    /** The veth end in the host's namespace. */
    readonly hostIf: string,
    /** Address of the Docker host as the PC sees it. */
    readonly hostAddress: string,
    /** Address of the PC on the veth. */
    readonly address: string,
  ) {
    super(name);
  }

  /** Creates the namespace and its veth to the host; anything left from an earlier run with the same name goes first. */
  static async create(options: PcOptions = {}): Promise<Pc> {
    const index = options.index ?? 0;
    const prefix = options.prefix ?? 'ctunpc';
    const name = `${prefix}${index}`;
    const hostIf = `${prefix}${index}h`.slice(0, 15);
    const pcIf = `${prefix}${index}p`.slice(0, 15);
    const hostAddress = `10.213.${index}.1`;
    const address = `10.213.${index}.2`;
    await execa('ip', ['link', 'del', hostIf], { reject: false });
    await Netns.add(name, { replace: true });
    const pc = new Pc(name, hostIf, hostAddress, address);
    try {
      await addVeth({ name: hostIf, cidr: `${hostAddress}/30` }, { ns: pc, name: pcIf, cidr: `${address}/30` });
    } catch (e) {
      await pc.destroy();
      throw e;
    }
    return pc;
  }

  /** Runs a program in the PC to its end; never throws for its exit code (what a PC's program says is the result). */
  override exec(file: string, args: string[], options: ExecOptions = {}) {
    return super.exec(file, args, { reject: false, ...options });
  }

  override async destroy(): Promise<void> {
    await super.destroy();
    await execa('ip', ['link', 'del', this.hostIf], { reject: false });
  }
}
