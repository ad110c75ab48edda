/**
 * The set of estimator plugins a run can use: the built-ins plus any loaded with `--plugin ./path.ts`.
 *
 * @module
 */
import { definePlugin, type EstimatorPlugin, PluginError } from "./plugin.ts";
import { InputError, show } from "../../schemas/errors.ts";
import type { Kind } from "../../schemas/batch.ts";

/** A registry of plugins by name; option flags must not clash between plugins. */
export class Registry {
  #plugins = new Map<string, EstimatorPlugin>();
  #flags = new Map<string, string>();
  #modules = new Map<string, string>();

  constructor(plugins: Iterable<EstimatorPlugin> = []) {
    for (const p of plugins) this.register(p);
  }

  /** Validates and adds a plugin; errors are prefixed with its name. */
  register(plugin: EstimatorPlugin): void {
    definePlugin(plugin);
    if (this.#plugins.has(plugin.name)) {
      throw new PluginError(
        plugin.name,
        `Cannot register plugin as the name is taken: current value is ${show(plugin.name)}`,
      );
    }
    for (const key of Object.keys(plugin.options)) {
      const owner = this.#flags.get(key);
      if (owner && owner !== plugin.name) {
        const mine = JSON.stringify(plugin.options[key]);
        const theirs = JSON.stringify(this.#plugins.get(owner)!.options[key]);
        if (mine !== theirs) {
          throw new PluginError(
            plugin.name,
            `Cannot register option --${key} as plugin '${owner}' declares it differently: current value is ${mine}`,
          );
        }
      }
    }
    for (const key of Object.keys(plugin.options)) if (!this.#flags.has(key)) this.#flags.set(key, plugin.name);
    this.#plugins.set(plugin.name, plugin);
  }

  /** The plugin of that name, or an error listing the known names. */
  get(name: string): EstimatorPlugin {
    const p = this.#plugins.get(name);
    if (!p) {
      throw new Error(
        `Cannot find estimator as it is not registered (known: ${
          [...this.#plugins.keys()].join(", ")
        }): current value is ${show(name)}`,
      );
    }
    return p;
  }

  /** The module URL a plugin was loaded from with {@linkcode Registry.load} (null for others). */
  moduleOf(name: string): string | null {
    return this.#modules.get(name) ?? null;
  }

  /** Every plugin, in registration order. */
  all(): EstimatorPlugin[] {
    return [...this.#plugins.values()];
  }

  /**
   * Imports a user's plugin module (default export, or export named `plugin`) and registers it; errors are
   * PluginErrors. `path` is a local path (or a `file:` URL); any other URL (https:, data:, npm:, ...) runs code
   * from elsewhere with the command's permissions, so it is refused unless `allowUrl` (`--allow-remote-plugin`).
   */
  async load(path: string, { allowUrl = false }: { allowUrl?: boolean } = {}): Promise<EstimatorPlugin> {
    const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]+):/.exec(path)?.[1].toLowerCase();
    if (scheme !== undefined && scheme !== "file" && !allowUrl) {
      throw new PluginError(
        null,
        `Cannot load plugin as it is a ${scheme}: URL, whose code would run with this command's permissions (pass a local path, or --allow-remote-plugin to load it anyway): current value is ${
          show(path)
        }`,
      );
    }
    const url = new URL(path, `file://${Deno.cwd()}/`).href;
    let mod: Record<string, unknown>;
    try {
      mod = await import(url);
    } catch (e) {
      throw new PluginError(
        null,
        `Cannot load plugin as its module failed to import (${(e as Error).message.split("\n")[0]}): current value is ${
          show(path)
        }`,
      );
    }
    const plugin = (mod.default ?? mod.plugin) as EstimatorPlugin | undefined;
    if (!plugin) {
      throw new PluginError(
        null,
        `Cannot load plugin as the module has no default export or 'plugin' export: current value is ${show(path)}`,
      );
    }
    this.register(plugin);
    this.#modules.set(plugin.name, url);
    return plugin;
  }

  /**
   * The estimators to run on a stream of `kind`: the requested ones (each must read that kind), or every
   * default estimator for it. Errors are {@linkcode InputError}s.
   */
  choose(requested: EstimatorPlugin[] | null, kind: Kind): EstimatorPlugin[] {
    const plugins = requested ?? this.all().filter((p) => p.byDefault && p.inputs.includes(kind));
    if (plugins.length === 0) {
      throw new InputError(
        `Cannot analyze ${kind} as no default estimator reads it; pass --estimators: current value is none`,
      );
    }
    for (const p of plugins) {
      if (!p.inputs.includes(kind)) {
        throw new InputError(
          `[${p.name}] Cannot run estimator as it reads ${p.inputs.join(" or ")}: current value is ${kind}`,
        );
      }
    }
    return plugins;
  }
}
