import type { TransportFactory } from "../../service/agentRunner.js";
import type { AgentConfig } from "../../config/config.js";
import { consoleBanner } from "../../console/consoleText.js";
import { AgentError } from "../../../common/errors.js";
import { SerialConsole } from "./serialConsole.js";
import type { SerialLinkOptions } from "../../../common/serial/serialLink.js";
import { SerialPortLink } from "../../../common/serial/serialPortLink.js";

/** The serial line settings from the config, refused at start when this OS cannot do them. */
export function serialLinkOptions(config: AgentConfig, platform: NodeJS.Platform = process.platform): SerialLinkOptions {
  const options: SerialLinkOptions = {
    path: config.serial,
    baudRate: config.baud,
    dataBits: config.serialDataBits as 5 | 6 | 7 | 8,
    parity: config.serialParity,
    stopBits: config.serialStopBits,
    flowControl: config.serialFlow,
  };
  if (platform !== "win32") {
    // serialport's POSIX binding knows only none/even/odd parity and 1 or 2 stop bits.
    if (options.parity === "mark" || options.parity === "space") {
      throw new AgentError(
        "IA_ERR_CONFIG",
        `--serial-parity: ${options.parity} parity is only available on Windows; expected none, even or odd here, got "${options.parity}"`,
      );
    }
    if (options.stopBits === 1.5)
      throw new AgentError(
        "IA_ERR_CONFIG",
        `--serial-stop-bits: 1.5 stop bits are only available on Windows; expected 1 or 2 here, got 1.5`,
      );
  }
  return options;
}

/** `8N1`, `7E2`: the framing as terminal programs write it. */
export function framingLabel(options: SerialLinkOptions): string {
  const parity = (options.parity ?? "none")[0]!.toUpperCase();
  return `${options.baudRate ?? 115200} ${options.dataBits ?? 8}${parity}${options.stopBits ?? 1}, flow ${options.flowControl ?? "none"}`;
}

/** The serial console serves `run` when `--serial` names a port. */
export const serialConsoleFactory: TransportFactory = (agent, config, logger) => {
  if (config.serial === "off") return undefined;
  const linkOptions = serialLinkOptions(config);
  const instrument = agent.instrument;
  return new SerialConsole({
    link: new SerialPortLink(linkOptions),
    service: agent.service,
    logger: logger.child({ component: "serial" }),
    banner: consoleBanner(agent),
    charset: config.serialCharset,
    wrap: config.serialWrap,
    lineLimit: config.serialLineLimit,
    scpi: instrument ? (query) => instrument.query(query, "serial") : undefined,
    lineLabel: `${linkOptions.path} ${framingLabel(linkOptions)}`,
  });
};
