// Plain-language explanations of the service's stable problem codes (see the OpenAPI responses).

const BUSY = "The service is busy right now and refused the request rather than keep you waiting. Try again in a few seconds.";

const EXPLANATIONS = {
  unsupported_view:
    "This film is a lateral (side) view. The model was trained on frontal chest films (PA or AP) only, so the service refuses it rather than give results that would mean nothing. Load the frontal film of the study instead.",
  not_chest:
    "The DICOM header says this image is not of the chest. The model reads chest X-rays only, so the service refuses it.",
  invalid_dicom:
    "The file is not a valid DICOM image, or one of its header values cannot be read. The detail above names the attribute.",
  unsupported_transfer_syntax:
    "The DICOM file uses a compression (transfer syntax) this service cannot decode. Export it uncompressed or as JPEG / JPEG 2000.",
  multi_frame: "The DICOM file holds several frames. Send a single radiograph.",
  not_an_image: "The file is not an image this service reads. Send a DICOM, PNG or JPEG file.",
  unsupported_photometric: "The image is in colour. Chest radiographs are grayscale; send the original film.",
  corrupt_image: "The image data is damaged or cut short, so it cannot be decoded.",
  image_too_large: "The image has more pixels than this service accepts.",
  image_too_small: "The image is too small to analyse (under 64 pixels on its short side).",
  payload_too_large: "The file is larger than this service accepts.",
  unsupported_media_type: "Send a DICOM, PNG or JPEG file.",
  missing_file: "No file reached the service. Choose the file again.",
  unauthorized:
    "This service needs an API key. Type it in the API key field and press Enter to send the film again.",
  queue_full: BUSY,
  latency_budget_exceeded: BUSY,
  upload_budget_exceeded: BUSY,
  decode_budget_exceeded: BUSY,
  model_not_ready: "The model is still loading or warming up. Try again in a moment.",
  shutting_down: "This service instance is shutting down. Try again; another instance may answer.",
  deadline_exceeded: "The result took longer than allowed, so the service gave up. Try again.",
  request_timeout: "The upload arrived too slowly. Check the connection and try again.",
  text_encoder_unavailable:
    "This model cannot score free-text findings. Use the built-in findings in the table.",
  invalid_parameter: "The service did not accept the request as sent. The detail above says why.",
  invalid_request: "The service did not accept the request as sent. The detail above says why.",
  unknown_name: "The service does not know that name.",
  inference_failed:
    "The model failed on this request. The request id below lets the operator find it in the service log.",
  internal_error:
    "The service failed on this request. The request id below lets the operator find it in the service log.",
  network_error: "The page could not reach the service. Check that it is running and reachable.",
};

export function explain(problem) {
  return (
    EXPLANATIONS[problem.code] ||
    "The service refused the request. The title and detail above are its own words."
  );
}
