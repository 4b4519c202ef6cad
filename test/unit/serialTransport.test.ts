import { describe, expect, it } from "vitest";
import { loadConfig } from "../../agent/config/config.js";
import { framingLabel, serialLinkOptions } from "../../agent/transports/serial/serialConsoleFactory.js";

const load = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => loadConfig({ flags, env, cwd: "/nonexistent-dir" }).config;

describe("serial settings", () => {
  it("default to 115200 8N1, no flow control, UTF-8, no wrap, 1000-character lines", () => {
    const config = load({ serial: "/dev/ttyUSB0" });
    expect(config).toMatchObject({
      baud: 115200,
      serialDataBits: 8,
      serialParity: "none",
      serialStopBits: 1,
      serialFlow: "none",
      serialCharset: "utf8",
      serialWrap: 0,
      serialLineLimit: 1000,
    });
    expect(framingLabel(serialLinkOptions(config, "linux"))).toBe("115200 8N1, flow none");
  });

  it("come from flags and IAGENT_* variables, and bad values name the flag or variable", () => {
    const config = load(
      { serial: "COM5", baud: "9600", serialDataBits: "7", serialParity: "even", serialStopBits: "2", serialFlow: "rtscts" },
      { IAGENT_SERIAL_CHARSET: "ascii", IAGENT_SERIAL_WRAP: "80" },
    );
    expect(framingLabel(serialLinkOptions(config, "win32"))).toBe("9600 7E2, flow rtscts");
    expect(config.serialCharset).toBe("ascii");
    expect(config.serialWrap).toBe(80);
    expect(() => load({ serialStopBits: "3" })).toThrow(/--serial-stop-bits: expected 1, 1\.5 or 2, got "3"/);
    expect(() => load({ serialFlow: "dtr" })).toThrow(/--serial-flow: expected one of none, rtscts, xonxoff/);
    expect(() => load({}, { IAGENT_SERIAL_CHARSET: "latin1" })).toThrow(/IAGENT_SERIAL_CHARSET/);
    expect(() => load({ baud: "100" })).toThrow(/--baud: expected at least 300/);
  });

  it("refuse mark/space parity and 1.5 stop bits off Windows, where serialport cannot set them", () => {
    expect(() => serialLinkOptions(load({ serial: "/dev/ttyS0", serialParity: "mark" }), "linux")).toThrow(/only available on Windows/);
    expect(() => serialLinkOptions(load({ serial: "/dev/ttyS0", serialStopBits: "1.5" }), "linux")).toThrow(
      /--serial-stop-bits: 1\.5 stop bits/,
    );
    expect(serialLinkOptions(load({ serial: "COM3", serialStopBits: "1.5", serialParity: "space" }), "win32")).toMatchObject({
      stopBits: 1.5,
      parity: "space",
    });
  });
});
