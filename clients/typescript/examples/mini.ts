// A 003 front-end: sign in for the day and read the sign-in state.
import { createPointsClient, miniData, PointsError } from "../src/index";

export async function signIn(baseUrl: string, token: string, openid: string): Promise<void> {
  const client = createPointsClient(baseUrl, { token });
  const signed = await client.POST("/api/sign/", { body: { openid } });
  try {
    miniData(signed.data);
  } catch (e) {
    if (e instanceof PointsError) console.log(e.code, e.message);
    throw e;
  }
}

export async function comboOf(baseUrl: string, token: string, openid: string): Promise<number> {
  const client = createPointsClient(baseUrl, { token });
  const signed = await client.POST("/api/sign/", { body: { openid } });
  return miniData(signed.data).combo_sum;
}
