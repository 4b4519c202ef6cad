/**
 * A serial line as the rest of the agent sees it: the serial console and the firmware
 * bridge's serial and Prologix links talk to this, never to `serialport` itself.
 * `serialPortLink.ts` implements it on real ports and ptys; unit tests may hand in a fake.
 */

export type Parity = "none" | "even" | "odd" | "mark" | "space";
export type FlowControl = "none" | "rtscts" | "xonxoff";

export interface SerialLinkOptions {
  /** Device path: `/dev/ttyUSB0`, `/dev/pts/3`, `COM5`. */
  path: string;
  /** Line speed, 300 to 921600. Defaults to 115200. */
  baudRate?: number;
  /** Defaults to 8. */
  dataBits?: 5 | 6 | 7 | 8;
  /** Defaults to `none`. */
  parity?: Parity;
  /** Defaults to 1. */
  stopBits?: 1 | 1.5 | 2;
  /** Defaults to `none`. */
  flowControl?: FlowControl;
}

export interface SerialLinkEvents {
  /** Bytes as they arrive. */
  onData?: (bytes: Buffer) => void;
  /**
   * The port closed. `disconnected` is true when the device went away (USB-serial
   * unplugged, pty removed) rather than being closed by us.
   */
  onClose?: (info: { disconnected: boolean; error?: Error }) => void;
  /** A runtime error that did not close the port. */
  onError?: (error: Error) => void;
}

export interface SerialLink {
  readonly path: string;
  readonly isOpen: boolean;
  /** Opens the port; rejects with the OS reason (ENOENT, EACCES, EBUSY). */
  open(events: SerialLinkEvents): Promise<void>;
  /** Writes and resolves once the bytes have left Node's buffers (drained), so slow lines apply backpressure. */
  write(bytes: Buffer | string): Promise<void>;
  /** Discards output not yet sent (Ctrl-C while a 9600-baud line is backlogged). */
  flushOutput(): Promise<void>;
  /** Closes the port; idempotent. */
  close(): Promise<void>;
}
