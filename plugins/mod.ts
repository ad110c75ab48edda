/**
 * The built-in estimator plugins, in the order `--help` lists them.
 *
 * @module
 */
import type { EstimatorPlugin } from "../pipeline/plugin.ts";
import { entropyPlugin } from "./entropy.ts";
import { uniqueInfoPlugin } from "./unique_info.ts";

/** Every built-in plugin. */
export const builtinPlugins: EstimatorPlugin[] = [entropyPlugin, uniqueInfoPlugin];
