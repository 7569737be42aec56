// A 000 front-end: log in, then read the balance and the history. Type-checked in CI, so it
// breaks when the server's document changes under it.
import { createPointsClient, giftData } from "../src/index";

export async function balanceOf(baseUrl: string, authCode: string): Promise<number> {
  const credentials: { token?: string } = {};
  const client = createPointsClient(baseUrl, credentials);

  const login = await client.POST("/v2/user/login.json", {
    body: { app_id: "default", auth_code: authCode },
  });
  const session = giftData(login.data);
  credentials.token = session.token;

  const points = await client.POST("/v2/user/points.json", {
    body: { app_id: "default", user_id: session.user_id },
  });
  const history = await client.GET("/v2/user/histories.json", {
    params: { query: { user_id: session.user_id, page: 1, step: 10 } },
  });
  const items = giftData(history.data);
  const count: number | undefined = history.data?.status ? history.data.count : undefined;
  const first: string | undefined = items[0]?.create_time;
  console.log(items.length, count, first);
  return giftData(points.data).points;
}
