import assert from "node:assert/strict";
import { atomicWrite, WriteGroup } from "./write.ts";

const names = async (dir: string) => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

Deno.test("WriteGroup: files get their names only at commit; a failed commit leaves no file and no temporary", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await atomicWrite(`${dir}/a.bin`, "old a");
    const group = new WriteGroup();
    await atomicWrite(`${dir}/a.bin`, new Uint8Array([1, 2, 3]), group);
    await atomicWrite(`${dir}/b.txt`, [new TextEncoder().encode("b1"), new TextEncoder().encode("b2")], group);
    assert.equal(await Deno.readTextFile(`${dir}/a.bin`), "old a"); // the old file until commit
    await group.commit();
    assert.deepEqual([...await Deno.readFile(`${dir}/a.bin`)], [1, 2, 3]);
    assert.equal(await Deno.readTextFile(`${dir}/b.txt`), "b1b2");
    assert.deepEqual(await names(dir), ["a.bin", "b.txt"]);

    // a file whose directory is gone: the commit fails, the others' temporaries are removed and the old file stays
    const failing = new WriteGroup();
    await Deno.mkdir(`${dir}/sub`);
    await atomicWrite(`${dir}/a.bin`, "new a", failing);
    await atomicWrite(`${dir}/sub/c.txt`, "c", failing);
    await Deno.remove(`${dir}/sub`, { recursive: true });
    await assert.rejects(() => failing.commit());
    assert.deepEqual([...await Deno.readFile(`${dir}/a.bin`)], [1, 2, 3]);
    assert.deepEqual(await names(dir), ["a.bin", "b.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
